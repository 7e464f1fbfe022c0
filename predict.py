"""Classify images: python predict.py RUN_OR_CKPT IMAGE_OR_DIR... [--crops 1|10] [--top-k 5] [--json] [--out FILE].

One image: its top-k class names and probabilities. Several images or a folder: a CSV table
(or JSON with --json), one row per image, on stdout or into --out. Images are preprocessed as the
run's own test images were (its resize, crop size and training mean, from <run>/.hydra/config.yaml).
"""

import argparse
import csv
import io
import json
import sys
from pathlib import Path

if __name__ == "__main__":  # first, before torch loads (alexnet.host)
    from alexnet.host import tune_process

    tune_process()

from alexnet.data.augment import CROP_COUNTS  # noqa: E402
from alexnet.exit_codes import ExitCode  # noqa: E402

ROOT = Path(__file__).resolve().parent


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1].replace("\n", " "), usage=None)
    parser.add_argument(
        "run",
        help="a run folder (its tested checkpoint, else last.ckpt), a checkpoint file, or a W&B artifact "
        "(wandb-artifact://entity/project/model-<run id>:best)",
    )
    parser.add_argument("images", nargs="+", help="image files and folders (searched recursively for .jpeg/.jpg/.png)")
    parser.add_argument(
        "--crops",
        type=int,
        default=1,
        choices=CROP_COUNTS,
        help="1 (default): the centre crop; 10: the paper's four corners and centre and their reflections",
    )
    parser.add_argument("--top-k", type=int, default=5, help="how many classes per image (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="JSON instead of the text list (one image) or the CSV table")
    parser.add_argument("--out", type=Path, default=None, help="write the output here instead of stdout")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: %(default)s)")
    parser.add_argument(
        "--data-root", default=None, help="the dataset folder (mean image, class names), when not the one in the run's config"
    )
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    return args


def as_csv(rows: list[dict], k: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", *(f"{col}_{i}" for i in range(1, k + 1) for col in ("class", "name", "probability"))])
    for row in rows:
        writer.writerow([row["image"], *(v for t in row["top"] for v in (t["class"], t["name"], f"{t['probability']:.4f}"))])
    return out.getvalue()


def as_text(row: dict) -> str:
    width = max(len(t["name"]) for t in row["top"])
    lines = [f"{row['image']}:"]
    lines += [f"  {i}. {t['name']:<{width}}  {100 * t['probability']:5.1f}%  ({t['class']})" for i, t in enumerate(row["top"], 1)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from rich.console import Console
    from rich.progress import track

    from alexnet.errors import ConfigError
    from alexnet.evaluation.predict import Predictor, image_files

    err = Console(stderr=True)
    try:
        files = image_files(args.images)
        predictor = Predictor(args.run, args.crops, args.data_root, args.device)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"predict error: {error}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    for warning in predictor.warnings:
        print(f"predict warning: {warning}", file=sys.stderr)
    folder = len(files) > 1 or any(Path(p).is_dir() for p in args.images)
    results = predictor.predict(files, args.top_k, args.batch_size)
    if folder:  # the bar goes to stderr: stdout stays the table
        results = track(results, total=len(files), description="predicting", console=err, transient=True)
    rows, failed = [], []
    for result in results:
        if isinstance(result, tuple):
            failed.append(result)
            err.print(f"skipped {result[0]}: {result[1]}", markup=False, highlight=False, soft_wrap=True)
        else:
            rows.append(result.as_dict())
    crop = "ten crops" if args.crops == 10 else "centre crop"
    if rows:
        k = len(rows[0]["top"])
        text = json.dumps(rows, indent=1) + "\n" if args.json else as_csv(rows, k) if folder else as_text(rows[0])
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
    where = f" -> {args.out}" if args.out and rows else ""
    err.print(
        f"{len(rows)} of {len(files)} images classified ({crop}, {predictor.checkpoint}){where}"
        + (f"; {len(failed)} unreadable, skipped" if failed else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return ExitCode.FAILED if not rows else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
