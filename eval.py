"""Evaluate checkpoints: python eval.py CKPT|RUN_DIR|MULTIRUN_DIR [...] [--split val] [--crops 10|1].

Several checkpoints (or a multirun folder, e.g. the five seeds of `-m seed=1,2,3,4,5`) are
evaluated as an ensemble: softmax averaged over crops and members. Writes results.json.
"""

import argparse
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # first, before torch loads (alexnet.host)
    from alexnet.host import tune_process

    tune_process()

from alexnet.data.augment import CROP_COUNTS  # noqa: E402
from alexnet.exit_codes import ExitCode  # noqa: E402

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument(
        "paths",
        nargs="+",
        help="checkpoint files, run folders, multirun folders or W&B artifacts (wandb-artifact://entity/project/name:version)",
    )
    parser.add_argument(
        "--split", default="val", help="split folder to evaluate (default: val; ILSVRC-2012: val is the test set)"
    )
    parser.add_argument(
        "--crops", type=int, default=10, choices=CROP_COUNTS, help="10 (default): the paper's ten patches; 1: centre crop"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: %(default)s)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=max(0, (os.cpu_count() or 1) - 1),
        help="loader processes (default: one per CPU core but one, here %(default)s)",
    )
    parser.add_argument("--data-root", default=None, help="the dataset folder, when not the one in the run's config")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--out", type=Path, default=None, help="default: outputs/evals/<time>/results.json")
    args = parser.parse_args(argv)

    from alexnet.errors import ConfigError
    from alexnet.evaluation.evaluate import RESULTS, evaluate

    out = args.out or ROOT / "outputs" / "evals" / time.strftime("%Y-%m-%d_%H-%M-%S") / RESULTS
    try:
        results = evaluate(
            args.paths, args.split, args.crops, args.batch_size, args.num_workers, args.data_root, args.device, out
        )
    except (ConfigError, FileNotFoundError) as err:
        print(f"eval error: {err}", file=sys.stderr)
        sys.exit(ExitCode.CONFIG_ERROR)
    for warning in results["warnings"]:
        print(f"eval warning: {warning}", file=sys.stderr)
    crop = "ten-crop" if args.crops == 10 else "centre crop"
    for m in results["members"]:
        print(f"{m['checkpoint']}: top-1 {100 * m['top1_err']:.2f}%  top-5 {100 * m['top5_err']:.2f}%")
    e = results["ensemble"]
    print(
        f"ensemble of {e['size']} ({crop}, {results['split']}, {results['images']} images): "
        f"top-1 error {100 * e['top1_err']:.2f}%  top-5 error {100 * e['top5_err']:.2f}%"
    )
    for s in results["skipped"]:
        print(f"skipped {s['run_dir']}: {s['status']}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
