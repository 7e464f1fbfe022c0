"""A folder layout of many small JPEGs, to time the dataset check (docs/dataset-check.md) on a
tree larger than the real photos at hand:

    python scripts/many_small_files.py /tmp/many --files 50000
    python -m alexnet.data.check /tmp/many --quick

Each image is 24x24 pixels of noise (about 1.5 KB: nearly every file shares its size with
others, so nearly every one is read for its digest the first time, the worst case), 90% in
train/, 10% in val/, over --classes classes; --copies of the training images are copied byte
for byte into val/, so the check has cross-split duplicates to find. Delete the folder after.
"""

import argparse
import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (must not exist)")
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--copies", type=int, default=10, help="training images also copied into val/")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists: choose a new folder")
    rng = np.random.default_rng(0)
    for i in range(args.files):
        split = "val" if i % 10 == 9 else "train"
        folder = args.out / split / f"c{(i // 10) % args.classes:04d}"  # every class in both splits
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=75)
        (folder / f"{i:07d}.JPEG").write_bytes(buffer.getvalue())
    for k, photo in enumerate(sorted((args.out / "train").glob("*/*.JPEG"))[: args.copies]):
        shutil.copyfile(photo, args.out / "val" / photo.parent.name / f"copy{k}.JPEG")
    print(f"{args.out}: {args.files + args.copies} files")


if __name__ == "__main__":
    main()
