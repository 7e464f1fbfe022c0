"""python -m alexnet.bench: the whole speed table in one run, on one machine.

    python -m alexnet.bench [--images DIR] [--skip-data] [--s3] [--batch 128] [--crop 227] [--rounds 15] [--steps 1]
                            [--warmup 2] [--device cpu|cuda] [--precision 32-true|bf16-mixed] [--fast|--no-fast]

1. model train step: this project's LightningModule vs a bare PyTorch loop over the same
   network, batch and threads (the Lightning overhead), vs torchvision's AlexNet in that loop,
   in alternating rounds (``alexnet.bench.model``, whose options these are);
2. loader images/s per core: the prepared store vs the torchvision reference pipeline
   (``alexnet.bench.data``), on the same original JPEGs (``--images``);
3. end to end (loader workers + device-side augmentation + step) from that store, and the
   wall time it implies for 90 ImageNet epochs;
on a GPU also the achieved TFLOP/s as a fraction of the measured bf16 matmul peak;
4. with ``--s3``: the training loader per core from that store's folder vs from the same store on
   an S3 server started on 127.0.0.1 (``alexnet.bench.object_store``; loopback, not a cloud number).
"""

# ruff: noqa: E402 (the imports follow the process tuning)
if __name__ == "__main__":  # an entry point: tune the process before torch loads (alexnet.host)
    from alexnet.host import tune_process

    tune_process()

import argparse
import tempfile
from pathlib import Path

import torch

from alexnet.bench import data as data_bench
from alexnet.bench import end_to_end, model, object_store
from alexnet.bench.report import print_rows
from alexnet.paths import shared_data

SHARED_SAMPLE = shared_data() / "imagenet-sample"
S3_ROUNDS, S3_BATCH = 5, 125  # 125: the sample's 500 images in whole batches, so a round reads each image once


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m alexnet.bench",
        description=__doc__,
        parents=[model.parser(add_help=False)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--images", type=Path, default=SHARED_SAMPLE, help="original JPEGs, DIR/<split>/<class>/ (default: %(default)s)"
    )
    p.add_argument("--skip-data", action="store_true", help="model step only")
    p.add_argument("--s3", action="store_true", help="also the training loader from the store vs from an S3 server on 127.0.0.1")
    args = p.parse_args(argv)
    setup = model.setup_from(args)

    rows = model.run(setup)
    if setup.device == "cuda":
        peak = model.matmul_peak_tflops("cuda")
        for row in rows:
            if "tflops" in row:
                row["peak_fraction"] = row["tflops"] / peak
        rows.append({"name": "measured bf16 matmul peak", "value": f"{peak:.0f} TFLOP/s"})
    where = torch.cuda.get_device_name() if setup.device == "cuda" else model.threads()
    title = (
        f"train step, batch {setup.batch}, crop {setup.crop}, {setup.device} ({where}), {setup.precision}, "
        f"median of {setup.rounds} alternating rounds of {setup.steps} steps"
    )
    if args.skip_data:
        print_rows(title, rows)
        return

    store = Path(tempfile.mkdtemp(prefix="alexnet-bench-store-"))
    _, split = data_bench.image_folder(args.images)
    loader = data_bench.main(["--images", str(args.images), "--store", str(store), "--crop", str(setup.crop)])
    rows.append({"name": "loader per core: torchvision reference", "images_per_s": 1 / loader["reference"]})
    rows.append(
        {
            "name": "loader per core: prepared store + batch ops",
            "images_per_s": 1 / loader["project"],
            "value": f"{loader['speedup']:.1f}x the reference",
        }
    )
    rows.append(end_to_end.run(setup, str(store), split=split))
    if setup.device == "cuda":  # the workers only read bytes; nvJPEG decodes the batch
        rows.append(end_to_end.run(setup, str(store), split=split, decode_on="device"))
    if args.s3:  # the loader bench's rounds and batch
        rows += object_store.run(store, split, rounds=S3_ROUNDS, batch_size=S3_BATCH)
    print_rows(title, rows)


if __name__ == "__main__":
    main()
