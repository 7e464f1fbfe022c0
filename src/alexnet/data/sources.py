"""The three ways a dataset sits on disk, behind one interface (``classes``, ``names``,
``splits()``, ``records(split)``), detected from what ``root`` holds:

- a prepared store (``index.json``, see ``alexnet.data.store``);
- the official ILSVRC archives + devkit (see ``alexnet.data.ilsvrc``);
- folders: ``root/<split>/<class>/*`` (ImageNet extracted, Imagenette, any folder-per-class set).
"""

from pathlib import Path

from torchvision.datasets.folder import find_classes, make_dataset

from alexnet.data import ilsvrc
from alexnet.data.records import Records
from alexnet.data.store import StoreSource, is_store

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
# "wnid name" per line: this project's labels.txt, imagenet-sample's synsets.txt, Kaggle's LOC_synset_mapping.txt.
NAME_FILES = ("labels.txt", "synsets.txt", "LOC_synset_mapping.txt")


def read_names(root: Path) -> dict[str, str]:
    for name in NAME_FILES:
        path = Path(root) / name
        if path.is_file():
            return {parts[0]: parts[1].strip() if len(parts) > 1 else parts[0]
                    for parts in (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())}
    return {}


class FolderSource:
    kind = "folder"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.labels = read_names(self.root)

    def splits(self) -> list[str]:
        """The usual split folders present; any folders when there are none of those."""
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return [s for s in ("train", "val", "test") if s in folders] or folders

    def records(self, split: str) -> Records:
        """Class index = position of the folder name (the wnid) in sorted order, as in ILSVRC."""
        folder = self.root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"data.root: no '{split}' folder in {self.root.resolve()} (expected {split}/<class>/*.JPEG)")
        try:
            classes, class_to_idx = find_classes(str(folder))
            samples = make_dataset(str(folder), class_to_idx, extensions=IMAGE_EXTENSIONS)
        except FileNotFoundError as err:  # an empty class folder, or no class folders at all
            raise FileNotFoundError(f"data.root: {folder}: {err}") from err
        return Records.of_files(classes, self.root, samples)

    def names_of(self, classes: list[str]) -> list[str]:
        return [self.labels.get(c, c) for c in classes]


class ArchiveSource:
    kind = "archives"

    def __init__(self, root: Path, cache_dir: Path):
        self.root, self.cache_dir = Path(root), Path(cache_dir)
        self.archives = ilsvrc.find_archives(self.root)
        devkit = ilsvrc.find_devkit(self.root)
        if devkit is None:
            raise FileNotFoundError(f"data.root: {self.root} has ILSVRC archives but no devkit (ILSVRC20xx_devkit*.tar.gz or folder)")
        self.devkit = ilsvrc.read_devkit(devkit, extra_dir=self.root)

    def splits(self) -> list[str]:
        return list(self.archives)

    def records(self, split: str) -> Records:
        if split not in self.archives:
            raise FileNotFoundError(f"data.root: no ILSVRC20xx_img_{split}.tar in {self.root} (found: {', '.join(self.archives) or 'none'})")
        if split == "train":
            return ilsvrc.train_records(self.archives[split], self.devkit, self.cache_dir)
        return ilsvrc.labelled_records(self.archives[split], split, self.devkit, self.cache_dir)

    def names_of(self, classes: list[str]) -> list[str]:
        return [self.devkit.names.get(c, c) for c in classes]


def open_source(root: Path, cache_dir: Path | None = None):
    """The layout found in ``root``; caches (archive indexes) go to ``cache_dir`` (default: ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root.resolve()}: no such folder")
    if is_store(root):
        return StoreSource(root)
    if ilsvrc.find_archives(root):
        return ArchiveSource(root, Path(cache_dir or root))
    return FolderSource(root)
