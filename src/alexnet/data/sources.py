"""The three ways a dataset sits on disk, behind one interface (``splits()``, ``classes(split)``,
``files(split)``, ``records(split)``, ``names_of``, ``cache``), detected from what ``root`` holds:

- a prepared store (``index.json``, see ``alexnet.data.store``);
- the official ILSVRC archives + devkit (see ``alexnet.data.ilsvrc``);
- folders: ``root/<split>/<class>/*`` (ImageNet extracted, Imagenette, any folder-per-class set).
"""

from pathlib import Path

from alexnet.data import ilsvrc
from alexnet.data.cache import CacheFolder
from alexnet.data.listing import IMAGE_EXTENSIONS, SplitListing, list_split, subfolders
from alexnet.data.records import Records
from alexnet.data.store import StoreSource, few, is_store

# "wnid name" per line: this project's labels.txt, imagenet-sample's synsets.txt, Kaggle's LOC_synset_mapping.txt.
NAME_FILES = ("labels.txt", "synsets.txt", "LOC_synset_mapping.txt")


def read_names(root: Path) -> dict[str, str]:
    for name in NAME_FILES:
        path = Path(root) / name
        if path.is_file():
            return {
                parts[0]: parts[1].strip() if len(parts) > 1 else parts[0]
                for parts in (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())
            }
    return {}


class FolderSource:
    kind = "folder"

    def __init__(self, root: Path, cache_dir: Path | None = None):
        self.root = Path(root)
        self.cache = CacheFolder(self.root, cache_dir)
        self.labels = read_names(self.root)
        self.listings: dict[str, SplitListing] = {}

    def splits(self) -> list[str]:
        """The usual split folders present; any folders when there are none of those."""
        folders = subfolders(self.root)
        return [s for s in ("train", "val", "test") if s in folders] or folders

    def classes(self, split: str) -> list[str]:
        """Class index = position of the folder name (the wnid) in sorted order, as in ILSVRC."""
        folder = self.root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"data.root: no '{split}' folder in {self.root.resolve()} (expected {split}/<class>/*.JPEG)")
        classes = subfolders(folder)
        if not classes:
            raise FileNotFoundError(f"data.root: {folder}: no class folder in it (expected {split}/<class>/*.JPEG)")
        return classes

    def listing(self, split: str) -> SplitListing:
        """The split's classes and files (``listing``), walked once: the records and the check read it."""
        if split not in self.listings:
            self.classes(split)  # a missing split or one without classes: named here
            self.listings[split] = list_split(self.root, split)
        return self.listings[split]

    def records(self, split: str) -> Records:
        listing = self.listing(split)
        empty = listing.empty_classes()
        if empty:
            raise FileNotFoundError(
                f"data.root: {listing.folder}: Found no valid file for the classes {', '.join(empty)}. "
                f"Supported extensions are: {', '.join(IMAGE_EXTENSIONS)}"
            )
        samples = [(path, label) for label, c in enumerate(listing.classes) for path in listing.files[c]]
        return Records.of_files(listing.classes, self.root, samples)

    def files(self, split: str) -> list[str]:
        return self.records(split).files

    def names_of(self, classes: list[str]) -> list[str]:
        return [self.labels.get(c, c) for c in classes]


class ArchiveSource:
    kind = "archives"

    def __init__(self, root: Path, cache_dir: Path | None = None):
        self.root = Path(root)
        self.cache = CacheFolder(self.root, cache_dir)
        self.archives = ilsvrc.find_archives(self.root)
        devkit = ilsvrc.find_devkit(self.root)
        if devkit is None:
            raise FileNotFoundError(
                f"data.root: {self.root} has ILSVRC archives but no devkit (ILSVRC20xx_devkit*.tar.gz or folder)"
            )
        self.devkit = ilsvrc.read_devkit(devkit, extra_dir=self.root)

    def splits(self) -> list[str]:
        return list(self.archives)

    def archive(self, split: str) -> Path:
        if split not in self.archives:
            raise FileNotFoundError(
                f"data.root: no ILSVRC20xx_img_{split}.tar in {self.root} (found: {', '.join(self.archives) or 'none'})"
            )
        return self.archives[split]

    def classes(self, split: str) -> list[str]:
        self.archive(split)
        return self.devkit.wnids

    def records(self, split: str) -> Records:
        if split == "train":
            return ilsvrc.train_records(self.archive(split), self.devkit, self.cache)
        return ilsvrc.labelled_records(self.archive(split), split, self.devkit, self.cache)

    def files(self, split: str) -> list[str]:
        """The records' files: the split's archive (its images are byte ranges of it)."""
        return [str(self.archive(split))]

    def names_of(self, classes: list[str]) -> list[str]:
        return [self.devkit.names.get(c, c) for c in classes]


def class_difference(train: list[str], other: list[str]) -> str:
    """What another split's classes lack or add, named (a label is the class's position: both must match)."""
    known, found = set(train), set(other)
    lacking, extra = [c for c in train if c not in found], [c for c in other if c not in known]
    if not lacking and not extra:
        return "the same classes in another order"
    parts = [f"it lacks {len(lacking)} of them ({few(lacking)})"] if lacking else []
    parts += [f"it has {len(extra)} more ({few(extra)})"] if extra else []
    return "; ".join(parts)


def open_source(root: Path, cache_dir: Path | None = None):
    """The layout found in ``root``; its caches go to ``cache_dir`` when given (``data.cache_dir``),
    else beside the data or, where that is read-only, to a per-user folder (see ``cache``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root.resolve()}: no such folder")
    if is_store(root):
        return StoreSource(root, cache_dir)
    if ilsvrc.find_archives(root):
        return ArchiveSource(root, cache_dir)
    return FolderSource(root, cache_dir)
