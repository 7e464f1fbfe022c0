"""What identifies a split's images without reading them: its files, their sizes and, for the
statistics cache, their modification times.

Hashing every byte would cost about as much as an epoch of reading on ImageNet (140 GB), so
the fingerprint takes one ``stat`` per file instead: a file rewritten with other pixels gets
another size or modification time. The files are what the records point at: each image of a
folder layout, each archive of the ILSVRC layout (its members live inside it), each shard of
a store. Names are relative to the data folder, so a moved copy keeps its fingerprint.

- ``listing(..., mtimes=False)``: a store's record of its source (a copy of a dataset, say by
  rsync without -t, has new modification times but the same images);
- ``listing(..., mtimes=True)``: the statistics cache's key (a rewritten image invalidates it).
"""

import hashlib
import os
from pathlib import Path


def listing(files: list[str], base: Path, mtimes: bool) -> str:
    """sha1 of the distinct ``files`` in order, with their sizes (and modification times)."""
    digest = hashlib.sha1()
    seen: set[str] = set()
    for file in files:
        if file in seen:
            continue
        seen.add(file)
        st = os.stat(file)
        stamp = f"\t{st.st_mtime_ns}" if mtimes else ""
        digest.update(f"{os.path.relpath(file, base)}\t{st.st_size}{stamp}\n".encode())
    return digest.hexdigest()
