"""python -m alexnet.bench.data --images DIR: images/s per CPU core of two loaders on the same images.

- reference: the torchvision recipe, ``ImageFolder`` + ``RandomResizedCrop(224)`` + flip +
  ``ToTensor`` + ``Normalize``, decoding the original JPEGs;
- this project: the prepared store (256x256 JPEGs, made first with ``prepare`` if needed):
  decode per image, then crop + flip + PCA noise + mean subtraction on the uint8 batch
  (``BatchAugment``, here on the CPU too; with a GPU that part leaves the CPU entirely).

Both deliver float batches of the same shape, one process, one thread, no loader workers:
images per CPU-second of the process is images/s per core. Rounds alternate between the two
and the median round is reported.

``--s3`` measures instead the training loader from the store in a folder vs from the same store
on an S3 server on 127.0.0.1 (``alexnet.bench.object_store``).
"""

# ruff: noqa: E402 (the imports follow the process tuning)
if __name__ == "__main__":  # an entry point: tune the process before torch loads (alexnet.host)
    from alexnet.host import tune_process

    tune_process()

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from alexnet.bench import object_store
from alexnet.bench.report import print_rows
from alexnet.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, BatchAugment
from alexnet.data.batches import collate
from alexnet.data.datasets import ImageRecords
from alexnet.data.prepare import prepare
from alexnet.data.stats import compute_stats
from alexnet.data.store import StoreSource, is_store


def image_folder(images: Path) -> tuple[Path, str]:
    """The folder-per-class part of DIR: DIR/train, else DIR/val, else DIR itself."""
    for split in ("train", "val"):
        if (images / split).is_dir():
            return images / split, split
    return images, "."


def reference_batches(folder: Path, batch_size: int, crop: int):
    from torchvision import datasets
    from torchvision import transforms as T

    pipeline = T.Compose(
        [
            T.RandomResizedCrop(crop),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    loader = DataLoader(datasets.ImageFolder(str(folder), pipeline), batch_size=batch_size, shuffle=True, drop_last=True)
    while True:
        yield from loader


def project_batches(store: Path, split: str, batch_size: int, crop: int, on_cpu: bool = True):
    """``on_cpu=False``: the loader's part only, the uint8 batch that goes to the GPU for its batch ops."""
    source = StoreSource(store)
    dataset = ImageRecords(source.records(split), source.resize)
    stats = compute_stats(dataset, max_images=0)
    augment = BatchAugment(stats["mean_image"], crop, True, torch.tensor(IMAGENET_EIGVAL) * 255, torch.tensor(IMAGENET_EIGVEC))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate)
    while True:
        for x, y in loader:
            yield (augment.train_batch(x) if on_cpu else x), y


def seconds_per_image(batches, n_batches: int) -> float:
    """CPU seconds of this one-thread process per image: other work on the machine slows the wall
    clock, not the CPU time a core spends on an image."""
    start = time.process_time()
    images = 0
    for _ in range(n_batches):
        x, _ = next(batches)
        images += x.shape[0]
    return (time.process_time() - start) / images


def ensure_store(images: Path, split: str, store: Path | None, console: Console) -> tuple[Path, str]:
    store_split = split if split != "." else "all"
    if store is not None and is_store(store):
        return store, store_split
    store = store or Path(tempfile.mkdtemp(prefix="alexnet-bench-store-"))
    if split == ".":
        raise SystemExit(f"{images}: no train/ or val/ folder to prepare; prepare a store first and pass --store")
    prepare(images, store, splits=[split], console=console)
    return store, split


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m alexnet.bench.data", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=Path, required=True, help="original JPEGs: DIR/train/<class>/, DIR/val/<class>/ or DIR/<class>/"
    )
    parser.add_argument(
        "--store", type=Path, help="the prepared store of the same images (default: prepared now into a temporary folder)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--crop", type=int, default=224, help="both pipelines' output side (the reference's RandomResizedCrop size)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=2, help="batches per round and pipeline")
    parser.add_argument(
        "--s3",
        action="store_true",
        help="instead: the training loader from the store's folder vs from an S3 server started on 127.0.0.1, "
        "a round an epoch (--rounds, --batch-size)",
    )
    args = parser.parse_args(argv)
    console = Console()
    folder, split = image_folder(args.images)
    store, store_split = ensure_store(args.images, split, args.store, console)
    if args.s3:
        rows = object_store.run(store, store_split, args.rounds, args.batch_size)
        print_rows(object_store.title(args.rounds, args.batch_size), rows)
        return {"s3": rows}

    torch.set_num_threads(1)  # one core: no intra-op threads, no loader workers
    pipelines = {
        "torchvision reference: ImageFolder + RandomResizedCrop + flip + ToTensor + Normalize, original JPEGs": reference_batches(
            folder, args.batch_size, args.crop
        ),
        "this project, all on the CPU: store, decode 256x256 JPEG; crop + flip + PCA noise + mean on the batch": project_batches(
            store, store_split, args.batch_size, args.crop
        ),
        "this project, the loader's share when a GPU does the batch ops: store, decode, uint8 batch": project_batches(
            store, store_split, args.batch_size, args.crop, on_cpu=False
        ),
    }
    shapes = {name: tuple(next(b)[0].shape) for name, b in pipelines.items()}
    for batches in pipelines.values():  # warm-up: page cache, the reused batch memory
        seconds_per_image(batches, 2)
    reference, full, loader = pipelines
    if shapes[reference] != shapes[full]:
        raise SystemExit(f"the pipelines' batch shapes differ: {shapes}")
    rounds = {name: [] for name in pipelines}
    for _ in range(args.rounds):
        for name, batches in pipelines.items():
            rounds[name].append(seconds_per_image(batches, args.batches))
    per_image = {name: statistics.median(r) for name, r in rounds.items()}

    table = Table(title=f"data loading, images per CPU-second of one core ({cpu_name()}, torch {torch.__version__})")
    for column in ("pipeline", "batch", "ms / image", "images / s / core", "vs reference"):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    for name, seconds in per_image.items():
        shape = "x".join(map(str, shapes[name][1:])) + ("" if name != loader else " uint8")
        table.add_row(name, shape, f"{seconds * 1e3:.2f}", f"{1 / seconds:.0f}", f"{per_image[reference] / seconds:.1f}x")
    console.print(table)
    console.print(f"median of {args.rounds} alternating rounds of {args.batches} batches of {args.batch_size}")
    return {
        "reference": per_image[reference],
        "project": per_image[full],
        "loader": per_image[loader],
        "speedup": per_image[reference] / per_image[full],
        "loader_speedup": per_image[reference] / per_image[loader],
    }


if __name__ == "__main__":
    main()
