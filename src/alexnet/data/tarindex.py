"""Byte offsets of the files inside a tar, including tars inside a tar (ILSVRC's train archive
holds one tar per synset). Uncompressed tars store each member's bytes contiguously, so an
(offset, size) pair reads an image in place: no 140 GB extraction, no second copy on disk.

Scanning reads only the 512-byte headers. The result is cached as a small TSV beside the
other caches, keyed by the tar's size and modification time.
"""

import os
import tarfile
from pathlib import Path

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
                    members += [(f"{stem}/{Path(i.name).name}", m.offset_data + i.offset_data, i.size) for i in inner if i.isfile()]
            else:
                members.append((m.name, m.offset_data, m.size))
    return members


def cached_scan(path: Path, cache_dir: Path, nested: bool = False) -> list[Member]:
    path = Path(path)
    st = path.stat()
    stamp = f"# {path.name} {st.st_size} {st.st_mtime_ns} nested={nested}"
    cache = Path(cache_dir) / f"{path.name}.index.tsv"
    if cache.exists():
        lines = cache.read_text().splitlines()
        if lines and lines[0] == stamp:
            return [(name, int(off), int(size)) for name, off, size in (line.split("\t") for line in lines[1:])]
    members = scan(path, nested)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.tmp.{os.getpid()}")
    tmp.write_text("\n".join([stamp] + [f"{n}\t{o}\t{s}" for n, o, s in members]) + "\n")
    tmp.replace(cache)  # atomic: an interrupted scan never leaves a half index
    return members
