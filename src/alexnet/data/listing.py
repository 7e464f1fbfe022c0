"""The folder layout's listing, ``root/<split>/<class>/**/<image>``: which folders are classes,
which files are images, and in what order. Training (``sources.FolderSource``), ``prepare``,
``predict`` and the dataset check (``check``) all read it from here.

- An image is a file whose extension is one of ``IMAGE_EXTENSIONS``: what the one decoding rule
  (``decode.to_rgb8``) reads, JPEG, PNG, GIF, WebP, BMP and TIFF (any case).
- Hidden files and folders (``.ipynb_checkpoints``, macOS ``._x.JPEG``) are never classes or images.
- The order is torchvision's ``make_dataset``'s (sorted classes, then each class's folders by path
  and their files by name), which the statistics cache and a store's fingerprint depend on.
- Symbolic links are followed (a class folder linked from other storage, a deduplicated copy),
  but a link back to a folder it sits in (``train/a/again -> .``) is refused, naming the link:
  followed, it would list the same images again and again until the path is too long.
  Links whose target lies outside the data root are noted (the check reports them).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

# The extension of an image file -> the format Pillow names it by (the check reports a file named as another).
FORMAT_OF_EXTENSION = {".jpeg": "JPEG", ".jpg": "JPEG", ".png": "PNG", ".gif": "GIF", ".webp": "WEBP", ".bmp": "BMP"}
FORMAT_OF_EXTENSION |= {".tif": "TIFF", ".tiff": "TIFF"}
IMAGE_EXTENSIONS = tuple(FORMAT_OF_EXTENSION)


class ListingError(ValueError):
    """A folder layout that cannot be listed as it is (a link loop, an unreadable folder); the
    message starts with ``data.root:``, so a training run reports it as a config error."""


def visible(name: str) -> bool:
    return not name.startswith(".")


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def relative(root: Path, path: str) -> str:
    """A listed file's path relative to the data root (the listing's paths all start with it)."""
    prefix = str(root) + os.sep
    return path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, root)


def subfolders(folder: Path) -> list[str]:
    """The visible folders in ``folder`` (links to folders included), sorted."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and visible(e.name))


@dataclass
class SplitListing:
    """One split's classes and files, as found: empty classes and odd files included."""

    folder: Path
    classes: list[str]
    files: dict[str, list[str]]  # class -> its image files (paths), in the listing's order
    others: list[str] = field(default_factory=list)  # visible files in class folders that are not images by their name
    outside: list[tuple[str, str]] = field(default_factory=list)  # (link, where it leads): links leaving the data root

    def empty_classes(self) -> list[str]:
        return [c for c in self.classes if not self.files[c]]


def list_split(root: Path, split: str) -> SplitListing:
    """The split folder ``root/split``: its class folders (``subfolders``) and their images."""
    folder = Path(root) / split
    real_root = os.path.realpath(root)
    above = {identity(str(root)), identity(str(folder))}  # a link to the split or the root loops too
    classes = subfolders(folder)
    listing = SplitListing(folder, classes, {})
    for name in classes:
        class_folder = os.path.join(str(folder), name)
        found: list[tuple[str, list[str]]] = []
        if os.path.islink(class_folder):
            note_outside(class_folder, real_root, listing)
        walk(class_folder, above, real_root, found, listing)
        found.sort()  # make_dataset's order: folders by path, then files by name
        listing.files[name] = [os.path.join(path, f) for path, names in found for f in sorted(names)]
    return listing


def identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def walk(path: str, above: set[tuple[int, int]], real_root: str, found: list, listing: SplitListing) -> None:
    """Adds (folder, its image names) for ``path`` and each visible folder below it to ``found``.
    ``above``: the identities of the folders ``path`` is in, to find a link that leads back up."""
    here = identity(path)
    if here in above:
        how = f"a symbolic link to {os.readlink(path)}" if os.path.islink(path) else "the same folder as one it is in"
        raise ListingError(
            f"data.root: {path} is {how}, a folder it is in: its images would be listed over and over (remove the link)"
        )
    try:
        entries = list(os.scandir(path))
    except OSError as err:
        raise ListingError(f"data.root: {path}: cannot be listed ({err.strerror})") from None
    images = []
    for entry in entries:
        if not visible(entry.name):
            continue
        if entry.is_symlink():
            note_outside(entry.path, real_root, listing)
        if entry.is_dir():
            walk(entry.path, above | {here}, real_root, found, listing)
        elif is_image(entry.name):
            images.append(entry.name)
        else:
            listing.others.append(entry.path)
    found.append((path, images))


def note_outside(link: str, real_root: str, listing: SplitListing) -> None:
    target = os.path.realpath(link)
    if os.path.commonpath([real_root, target]) != real_root:
        listing.outside.append((link, target))
