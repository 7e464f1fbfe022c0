"""python -m alexnet.data.check ROOT: what a folder-layout dataset holds (``root/<split>/<class>/*``,
listed as training lists it: ``listing``), before training on it.

- images per class and split, and the classes without any;
- exact duplicates (byte-identical files, ``duplicates``) within a split and across splits: an
  image in both the training split and the one tested on makes the test error look better;
- files in class folders that are not images by their name (never read), empty files, listed
  files that cannot be found (a broken link), and symbolic links that lead out of the root;
- the full check only: each image's format and the conversions the decoder will make
  (``decode.conversions``), from its header; files Pillow does not identify as images.

A link back to a folder it sits in is refused (``listing``): one line naming it, exit 2.
Anything else is reported and exits 0: warnings describe the data, they do not stop it.

Every training run on a folder layout runs the quick part (``quick``) on the splits it reads,
once, on rank zero (``ImageFolderDataModule.check_folders``): the listing it already makes, one
``stat`` per file, and only files that share a size read, their digests cached. Its duplicates
go to the run folder's list (``RunDir.duplicates``) and summary.json (``CROSS_SPLIT``), which the
tables mark beside the test error.
"""

import argparse
import json
import os
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from alexnet.data.duplicates import Digests, identical
from alexnet.data.listing import FORMAT_OF_EXTENSION, ListingError, relative
from alexnet.data.sources import FolderSource, open_source
from alexnet.exit_codes import ExitCode

# summary.json: images found in more than one of the run's splits (one per set of identical files).
CROSS_SPLIT = "data/cross_split_duplicates"
# summary.json: files that repeat another file of their own split.
WITHIN_SPLIT = "data/duplicate_copies_within_splits"
EXAMPLES = 5  # of each finding, in the printed report and the log; --json lists all
SAME_FORMAT = {"MPO": "JPEG"}  # a camera's multi-picture JPEG: a JPEG to every decoder


@dataclass
class Report:
    root: Path
    splits: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    groups: list[list[tuple[str, str]]]  # byte-identical files: (split, path relative to the root)
    others: list[str]  # relative paths of files in class folders that are not images by their name
    empty_files: list[str]
    missing: list[str]  # listed, but nothing there (a broken link)
    outside: list[tuple[str, str]]  # (link, where it leads)
    shared_size: int  # files that share their size with another: their digests are compared
    read: int  # of which read now (0 when the cache had them all)
    seconds: float = 0.0  # the whole check
    listing_seconds: float = 0.0  # of which the listing, which a training run makes anyway
    # The full check only (None after ``quick``):
    formats: Counter | None = None
    conversions: Counter | None = None
    misnamed: Counter | None = None  # "PNG named .jpg"
    unidentified: list[str] = field(default_factory=list)

    def empty_classes(self) -> list[str]:
        return [f"{split}/{c}" for split, counts in self.counts.items() for c, n in counts.items() if not n]

    def across(self) -> list[list[tuple[str, str]]]:
        return [g for g in self.groups if len({split for split, _ in g}) > 1]

    def within(self) -> list[list[tuple[str, str]]]:
        return [g for g in self.groups if len({split for split, _ in g}) < len(g)]

    def copies_within(self) -> int:
        return sum(n - 1 for g in self.groups for n in Counter(split for split, _ in g).values())

    def summary_fields(self) -> dict:
        """What summary.json records of the check."""
        return {CROSS_SPLIT: len(self.across()), WITHIN_SPLIT: self.copies_within()}

    def warnings(self, listed_in: Path | None = None) -> list[str]:
        """One line per finding that may matter to a run; [] for clean data."""
        where = f"listed in {listed_in}" if listed_in else "python -m alexnet.data.check lists them"
        out = []
        if self.across():
            across = self.across()
            out.append(
                f"{number(len(across), 'image is', 'images are')} in more than one split ({', '.join(self.splits)}) as "
                f"byte-identical files, e.g. {shown(across[0])}: an error measured on such a split may be biased low ({where})"
            )
        if self.copies_within():
            example = shown(self.within()[0])
            repeat = number(self.copies_within(), "file repeats", "files repeat")
            out.append(f"{repeat} another file of its own split, e.g. {example} ({where})")
        if self.empty_classes():
            empty_classes = number(len(self.empty_classes()), "class", "classes")
            out.append(f"{empty_classes} without images: {examples(self.empty_classes())}")
        if self.empty_files:
            empty = number(len(self.empty_files), "empty image file", "empty image files")
            out.append(f"{empty} (0 bytes, unreadable): {examples(self.empty_files)}")
        if self.missing:
            missing = number(len(self.missing), "listed image cannot", "listed images cannot")
            out.append(f"{missing} be found (a broken link?): {examples(self.missing)}")
        if self.unidentified:
            unknown = number(len(self.unidentified), "file", "files")
            out.append(f"{unknown} that Pillow does not identify as an image (unreadable): {examples(self.unidentified)}")
        if self.others:
            kinds = Counter(Path(p).suffix.lower() or "(none)" for p in self.others)
            out.append(
                f"{number(len(self.others), 'file', 'files')} in class folders, not images by their name, not read "
                f"({counted(kinds)}): {examples(self.others)}"
            )
        if self.outside:
            links = [f"{link} -> {target}" for link, target in self.outside]
            lead = number(len(self.outside), "symbolic link leads", "symbolic links lead")
            out.append(f"{lead} out of {self.root}: {examples(links)}")
        return out

    def text(self) -> str:
        """The readable report."""
        total = sum(sum(c.values()) for c in self.counts.values())
        took = f"{self.seconds:.2f} s, of which the listing {self.listing_seconds:.2f} s"
        lines = [f"dataset check of {self.root}: {total} images in {', '.join(self.splits)} ({took})"]
        lines += count_table(self.counts)
        compared = f"compared: the {self.shared_size} files that share a size with another; read now {self.read}, the rest cached"
        lines.append(f"duplicates: {number(len(self.groups), 'set', 'sets')} of byte-identical files ({compared})")
        for group in self.groups[:EXAMPLES]:
            lines.append(f"  {shown(group)}")
        if self.formats is not None:
            lines.append(f"formats: {counted(self.formats)}")
            rule = "alexnet.data.decode; EXIF-rotated: turned upright by predict only"
            lines.append(f"conversions by the decoder's rule ({rule}): {counted(self.conversions) or 'none'}")
            if self.misnamed:
                lines.append(f"named as another format: {counted(self.misnamed)}")
        findings = self.warnings()
        lines += [f"WARNING: {line}" for line in findings] or ["no warnings"]
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {
            "root": str(self.root),
            "status": "warnings" if self.warnings() else "clean",
            **self.summary_fields(),
            "images": {split: sum(c.values()) for split, c in self.counts.items()},
            "per_class": self.counts,
            "empty_classes": self.empty_classes(),
            "duplicates": [[{"split": s, "file": f} for s, f in g] for g in self.groups],
            "not_images_by_name": self.others,
            "empty_files": self.empty_files,
            "missing": self.missing,
            "links_leaving_root": [{"link": a, "target": b} for a, b in self.outside],
            "formats": self.formats,
            "conversions": self.conversions,
            "misnamed": self.misnamed,
            "unidentified": self.unidentified,
            "files_sharing_a_size": self.shared_size,
            "files_read": self.read,
            "seconds": round(self.seconds, 3),
            "listing_seconds": round(self.listing_seconds, 3),
        }

    def write_duplicates(self, path: Path) -> None:
        """The duplicates, one file per line: set, whether the set spans splits, split, file."""
        across = {id(g) for g in self.across()}
        lines = ["set\tacross_splits\tsplit\tfile"]
        lines += [f"{i}\t{id(g) in across}\t{s}\t{f}" for i, g in enumerate(self.groups) for s, f in g]
        path.write_text("\n".join(lines) + "\n")


def number(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def shown(group: list[tuple[str, str]]) -> str:
    return " = ".join(f for _, f in group[:3]) + (f" (+{len(group) - 3})" if len(group) > 3 else "")


def examples(items: list[str]) -> str:
    return ", ".join(items[:EXAMPLES]) + (f" (+{len(items) - EXAMPLES} more)" if len(items) > EXAMPLES else "")


def counted(counter: Counter) -> str:
    return ", ".join(f"{k} {n}" for k, n in counter.most_common())


def count_table(counts: dict[str, dict[str, int]]) -> list[str]:
    """Images per class and split: every class when there are few, else the spread and the smallest."""
    splits = list(counts)
    classes = list(dict.fromkeys(c for split in splits for c in counts[split]))
    if len(classes) <= 30:
        width = max(len(c) for c in [*classes, "class"])
        rows = [f"  {'class':<{width}}  " + "  ".join(f"{s:>8}" for s in splits)]
        for c in classes:
            rows.append(f"  {c:<{width}}  " + "  ".join(f"{counts[s].get(c, '-'):>8}" for s in splits))
        rows.append(f"  {'all':<{width}}  " + "  ".join(f"{sum(counts[s].values()):>8}" for s in splits))
        return rows
    rows = []
    for split in splits:
        n = sorted(counts[split].items(), key=lambda kv: kv[1])
        smallest = ", ".join(f"{c} {k}" for c, k in n[:EXAMPLES])
        rows.append(
            f"  {split}: {sum(counts[split].values())} images, {len(n)} classes, {n[0][1]}..{n[-1][1]} per class "
            f"(fewest: {smallest})"
        )
    return rows


def quick(source: FolderSource, splits: list[str]) -> Report:
    """The start-of-run part: the listing, one ``stat`` per file, digests of the files that share a size."""
    start = time.perf_counter()
    digests = Digests(source.root, source.cache)
    listings = {split: source.listing(split) for split in splits}  # already made when a training run checks
    listed = time.perf_counter()
    counts, files, others, outside, empty, missing = {}, {}, [], [], [], []
    for split, listing in listings.items():
        counts[split] = {c: len(listing.files[c]) for c in listing.classes}
        found = files[split] = []
        for paths in listing.files.values():
            for path in paths:
                try:
                    st = os.stat(path)
                except OSError:
                    missing.append(relative(source.root, path))
                    continue
                found.append((path, st))
                if not st.st_size:
                    empty.append(relative(source.root, path))
        others += [relative(source.root, p) for p in listing.others]
        outside += [(relative(source.root, a), b) for a, b in listing.outside]
    groups = [[(split, relative(source.root, path)) for split, path in g] for g in identical(files, digests)]
    report = Report(source.root, splits, counts, groups, others, empty, missing, outside, digests.shared_size, digests.hashed)
    report.seconds, report.listing_seconds = time.perf_counter() - start, listed - start
    return report


def full(source: FolderSource, splits: list[str]) -> Report:
    """``quick``, and each image's header: its format and the conversions the decoder will make."""
    report = quick(source, splits)  # a refused listing stops here, before torch loads
    from alexnet.data.decode import conversions  # imports torch: the tables read this module's keys without it

    start = time.perf_counter()  # the headers' time is added to quick's, torch's import left out
    report.formats, report.conversions, report.misnamed = Counter(), Counter(), Counter()
    empty = set(report.empty_files)  # reported as such already
    for split in splits:
        for paths in source.listing(split).files.values():
            for path in paths:
                if relative(source.root, path) in empty:
                    continue
                try:
                    with warnings.catch_warnings():  # a huge image is the decoder's to refuse, in one line
                        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                        with Image.open(path) as im:
                            found, converted = im.format, conversions(im)
                except Exception:  # noqa: BLE001 - whatever Pillow raises, it is no image it reads
                    report.unidentified.append(relative(source.root, path))
                    continue
                report.formats[found] += 1
                report.conversions.update(converted)
                extension = os.path.splitext(path)[1].lower()
                if SAME_FORMAT.get(found, found) != FORMAT_OF_EXTENSION.get(extension, found):
                    report.misnamed[f"{found} named {extension}"] += 1
    report.seconds += time.perf_counter() - start
    return report


def check_root(root: Path, splits: list[str] | None, cache_dir: Path | None, headers: bool) -> Report:
    source = open_source(root, cache_dir)
    if not isinstance(source, FolderSource):
        raise ValueError(f"{root} holds {source.kind}, not the folder layout <split>/<class>/* that this check reads")
    splits = splits or source.splits()
    return (full if headers else quick)(source, splits)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alexnet.data.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a folder with <split>/<class>/ images (data.root)")
    parser.add_argument("--splits", nargs="+", help="default: every split the root has")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the digests are cached (data.cache_dir)")
    parser.add_argument("--quick", action="store_true", help="only what a training run checks at its start: no image opened")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the report as JSON to PATH")
    args = parser.parse_args(argv)
    try:
        report = check_root(args.root.expanduser(), args.splits, args.cache_dir, headers=not args.quick)
    except (FileNotFoundError, ListingError, ValueError) as err:  # the listing's and the layout's: one line each
        print(f"check: {str(err).removeprefix('data.root: ')}", file=sys.stderr)
        sys.exit(ExitCode.CONFIG_ERROR)
    print(report.text())
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=1))
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
