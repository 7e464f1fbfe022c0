"""Byte-identical files among a dataset's images, reading as few bytes as possible.

Files are grouped by size first: one ``stat`` each, and a file whose size no other file has has
no copy. Only files that share a size are read: their last ``TAIL`` bytes first (a photo's last
bytes are compressed pixels, so two different photos differ there), then, where those agree too,
the whole file (blake2b). A file no larger than ``TAIL`` is read whole in the first step.

The digests are cached per split (``CacheFolder``: beside the data, or the per-user folder when the
data is read-only), keyed by the file's path, size and modification time: a second look reads no
file, and a rewritten file is read again.
"""

import hashlib
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from alexnet.data.cache import CacheFolder
from alexnet.data.listing import relative

log = logging.getLogger(__name__)

TAIL = 8192
HEADER = f"# path\tsize\tmtime_ns\tblake2b of the last {TAIL} bytes\tblake2b of all (-: not read)"


def cache_name(split: str) -> str:
    return f".content_digests_{split}.tsv"


@dataclass
class Entry:
    size: int
    mtime_ns: int
    tail: str
    full: str  # "" until the whole file was read (and always for files no larger than TAIL: the tail is all)


def digest(path: str, size: int, tail_only: bool) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if tail_only and size > TAIL:
            f.seek(size - TAIL)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Digests:
    """The cached digests of one data root's splits; ``hashed`` counts the files read this time."""

    def __init__(self, root: Path, cache: CacheFolder):
        self.root, self.cache = Path(root), cache
        self.cached: dict[str, dict[str, Entry]] = {}  # split -> relative path -> entry
        self.used: dict[str, dict[str, Entry]] = defaultdict(dict)  # what this look found valid or computed
        self.hashed = 0  # files read this time
        self.shared_size = 0  # files that share their size with another: the ones a digest is needed for

    def load(self, split: str) -> dict[str, Entry]:
        if split not in self.cached:
            entries: dict[str, Entry] = {}
            for path in self.cache.existing(cache_name(split)):
                try:
                    for line in path.read_text().splitlines()[1:]:
                        rel, size, mtime, tail, full = line.split("\t")
                        entries[rel] = Entry(int(size), int(mtime), tail, "" if full == "-" else full)
                except (OSError, UnicodeDecodeError, ValueError) as err:
                    log.warning("%s: unreadable (%s): its digests are computed again", path, err)
            self.cached[split] = entries
        return self.cached[split]

    def entry(self, split: str, path: str, st: os.stat_result) -> Entry:
        rel = relative(self.root, path)
        found = self.load(split).get(rel)
        if found is None or found.size != st.st_size or found.mtime_ns != st.st_mtime_ns:
            found = Entry(st.st_size, st.st_mtime_ns, digest(path, st.st_size, tail_only=True), "")
            self.hashed += 1
        self.used[split][rel] = found
        return found

    def full(self, split: str, path: str, entry: Entry) -> str:
        if entry.size <= TAIL:
            return entry.tail
        if not entry.full:
            entry.full = digest(path, entry.size, tail_only=False)
            self.hashed += 1
        return entry.full

    def save(self) -> None:
        """Each split's cache, now holding exactly the files of this look that shared a size: written
        only when a digest was computed (a second look writes nothing)."""
        if not self.hashed:
            return
        for split, entries in self.used.items():
            lines = [HEADER] + [
                f"{rel}\t{e.size}\t{e.mtime_ns}\t{e.tail}\t{e.full or '-'}"
                for rel, e in entries.items()
                if "\t" not in rel and "\n" not in rel  # such a name is read again next time
            ]
            text = "\n".join(lines) + "\n"
            self.cache.write(cache_name(split), lambda tmp, text=text: tmp.write_text(text), f"the '{split}' file digests")


def identical(files: dict[str, list[tuple[str, os.stat_result]]], digests: Digests) -> list[list[tuple[str, str]]]:
    """Groups of two or more byte-identical non-empty files: ``files`` is split -> (path, its stat);
    a group is (split, path) pairs in the order given."""
    by_size: dict[int, list[tuple[str, str, os.stat_result]]] = defaultdict(list)
    for split, found in files.items():
        for path, st in found:
            if st.st_size:  # empty files are unreadable images, not copies of each other
                by_size[st.st_size].append((split, path, st))
    groups = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        digests.shared_size += len(same_size)
        by_tail: dict[str, list] = defaultdict(list)
        for split, path, st in same_size:
            entry = digests.entry(split, path, st)
            by_tail[entry.tail].append((split, path, entry))
        for same_tail in by_tail.values():
            if len(same_tail) < 2:
                continue
            by_content: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for split, path, entry in same_tail:
                by_content[digests.full(split, path, entry)].append((split, path))
            groups += [group for group in by_content.values() if len(group) > 1]
    digests.save()
    return sorted(groups)
