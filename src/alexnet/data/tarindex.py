"""Byte offsets of the files inside a tar, including tars inside a tar (ILSVRC's train archive
holds one tar per synset). Uncompressed tars store each member's bytes contiguously, so an
(offset, size) pair reads an image in place: no 140 GB extraction, no second copy on disk.

Scanning reads only the 512-byte headers. The result is cached as a small TSV beside the
other caches (``cache``), keyed by the tar's size and modification time.
"""

import tarfile
from pathlib import Path

from alexnet.data.cache import CacheFolder

Member = tuple[str, int, int]  # (name, offset of the data in the outer file, size)


def scan(path: Path, nested: bool = False) -> list[Member]:
    """Regular files of a tar, in archive order. ``nested``: members that are tars themselves
    are opened and their files listed as ``<inner tar stem>/<name>``, mirroring the extracted layout."""
    members: list[Member] = []
    with tarfile.open(path, "r:") as outer:
        for m in outer:
            if not m.isfile():
                continue
            if nested and m.name.endswith(".tar"):
                stem = Path(m.name).stem
                with tarfile.open(fileobj=outer.extractfile(m), mode="r:") as inner:
                    members += [
                        (f"{stem}/{Path(i.name).name}", m.offset_data + i.offset_data, i.size) for i in inner if i.isfile()
                    ]
            else:
                members.append((m.name, m.offset_data, m.size))
    return members


def cached_scan(path: Path, cache: CacheFolder, nested: bool = False) -> list[Member]:
    path = Path(path)
    st = path.stat()
    stamp = f"# {path.name} {st.st_size} {st.st_mtime_ns} nested={nested}"
    name = f"{path.name}.index.tsv"
    for cached in cache.existing(name):
        with open(cached) as f:
            if f.readline().rstrip("\n") == stamp:
                return [(n, int(off), int(size)) for n, off, size in (line.rstrip("\n").split("\t") for line in f)]
    members = scan(path, nested)
    text = "\n".join([stamp] + [f"{n}\t{o}\t{s}" for n, o, s in members]) + "\n"
    cache.write(name, lambda tmp: tmp.write_text(text), f"the index of {path.name}")
    return members
