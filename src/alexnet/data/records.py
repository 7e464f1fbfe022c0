"""Where each image's bytes are, whatever the layout: a whole file (``train/<wnid>/x.JPEG``) or
a byte range inside a tar (the official ILSVRC archives, the prepared store's shards).

One representation for all three layouts lets one dataset class, ``prepare`` and the
benchmark read any of them, and a byte range read with ``os.pread`` needs no extraction.
"""

import mmap
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Records:
    classes: list[str]  # wnids (or folder names) in class-index order: sorted
    ids: list[str]  # a stable name per image for messages and cache keys: relative path or tar member
    labels: np.ndarray  # int64 class index
    files: list[str]  # the files holding the bytes
    file_of: np.ndarray  # int32: image i lives in files[file_of[i]]
    offsets: np.ndarray  # int64: first byte in that file
    sizes: np.ndarray  # int64: byte count; -1 is the whole file
    # A URL store's (``remote``): turns a shard's URL in ``files`` into its local copy. None: local files.
    shards: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    def item(self, i: int) -> tuple[str, str, int, int, int]:
        """(id, file, offset, size, label) of image i: plain values, cheap to send to a worker."""
        return self.ids[i], self.files[self.file_of[i]], int(self.offsets[i]), int(self.sizes[i]), int(self.labels[i])

    @classmethod
    def of_files(cls, classes: list[str], root: Path, samples: list[tuple[str, int]]) -> "Records":
        """Whole files: ``samples`` are (path, label) as torchvision's ``make_dataset`` lists them."""
        n = len(samples)
        return cls(
            classes=classes,
            ids=[os.path.relpath(p, root) for p, _ in samples],
            labels=np.array([y for _, y in samples], dtype=np.int64),
            files=[p for p, _ in samples],
            file_of=np.arange(n, dtype=np.int32),
            offsets=np.zeros(n, dtype=np.int64),
            sizes=np.full(n, -1, dtype=np.int64),
        )

    @classmethod
    def of_members(cls, classes: list[str], file: str, members: list[tuple[str, int, int, int]]) -> "Records":
        """Byte ranges of one tar: ``members`` are (id, offset, size, label)."""
        n = len(members)
        return cls(
            classes=classes,
            ids=[m[0] for m in members],
            labels=np.array([m[3] for m in members], dtype=np.int64),
            files=[str(file)],
            file_of=np.zeros(n, dtype=np.int32),
            offsets=np.array([m[1] for m in members], dtype=np.int64),
            sizes=np.array([m[2] for m in members], dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: list["Records"]) -> "Records":
        if not parts:
            raise ValueError("no records to concatenate")
        shift = np.cumsum([0] + [len(p.files) for p in parts[:-1]])
        return cls(
            classes=parts[0].classes,
            ids=[i for p in parts for i in p.ids],
            labels=np.concatenate([p.labels for p in parts]),
            files=[f for p in parts for f in p.files],
            file_of=np.concatenate([p.file_of + s for p, s in zip(parts, shift)]).astype(np.int32),
            offsets=np.concatenate([p.offsets for p in parts]),
            sizes=np.concatenate([p.sizes for p in parts]),
            shards=parts[0].shards,
        )


class HeldBytes:
    """Bytes of a file already in hand, from ``start`` on: a mapped local shard (whole, ``start``
    0) or a byte range fetched into memory. The streamed training split (``stream``) holds each
    piece of a shard it reads this way until its images are decoded: a mapping keeps the shard
    readable even if the cache evicts it meanwhile."""

    def __init__(self, file: str, start: int, data: "bytes | mmap.mmap"):
        self.file, self.start, self.data = file, start, data
        self.end = start + len(data)

    @classmethod
    def mapped(cls, file: str, path: str) -> "HeldBytes":
        with open(path, "rb") as f:
            return cls(file, 0, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            self.data.close()


class ByteReader:
    """Reads byte ranges, keeping a few files open: a store shard or an ILSVRC tar is read
    thousands of times per epoch, and opening it each time costs more than the read.
    Ranges inside bytes held in hand (``hold``) are read from there."""

    def __init__(self, max_open: int = 64, shards=None):
        self.max_open = max_open
        self.shards = shards  # a URL store's ShardCache (``remote``)
        self.fds: OrderedDict[str, int] = OrderedDict()
        self.held: dict[str, list[HeldBytes]] = {}
        self.pid = os.getpid()

    def hold(self, held: HeldBytes) -> None:
        self.held.setdefault(held.file, []).append(held)

    def release(self, held: HeldBytes) -> None:
        spans = self.held[held.file]
        spans.remove(held)
        if not spans:
            del self.held[held.file]
        held.close()

    def read(self, path: str, offset: int, size: int) -> bytes:
        for held in self.held.get(path, ()):
            if held.start <= offset and offset + size <= held.end:
                return held.data[offset - held.start : offset - held.start + size]
        if self.shards is not None:
            return self.read_fd(self.cached(path), path, offset, size)
        if size < 0:
            with open(path, "rb") as f:
                return f.read()
        return self.read_fd(self.fd(path), path, offset, size)

    def cached(self, url: str) -> int:
        """The descriptor of a URL store's shard, fetched on first use. An open descriptor of a
        shard evicted since (no link left) is closed: its disk space is freed, the shard fetched again."""
        for _ in range(2):
            local = str(self.shards.local(url))
            try:
                fd = self.fd(local)
            except FileNotFoundError:  # evicted by another worker between the fetch and the open
                continue
            if os.fstat(fd).st_nlink:
                return fd
            os.close(self.fds.pop(local))
        raise OSError(f"{url}: evicted from the cache as soon as fetched (data.cache_gb too small for the loader workers?)")

    def read_fd(self, fd: int, path: str, offset: int, size: int) -> bytes:
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise OSError(f"{path}: expected {size} bytes at offset {offset}, got {len(data)} (file truncated?)")
        return data

    def fd(self, path: str) -> int:
        if self.pid != os.getpid():  # a forked loader worker: open its own
            self.fds.clear()
            self.pid = os.getpid()
        fd = self.fds.get(path)
        if fd is None:
            if len(self.fds) >= self.max_open:
                os.close(self.fds.popitem(last=False)[1])
            fd = self.fds[path] = os.open(path, os.O_RDONLY)
        else:
            self.fds.move_to_end(path)
        return fd

    def close(self) -> None:
        if self.pid == os.getpid():
            for fd in self.fds.values():
                os.close(fd)
        self.fds.clear()

    def __getstate__(self):  # sent to a spawned worker: descriptors do not travel
        return {"max_open": self.max_open, "shards": self.shards}

    def __setstate__(self, state):
        self.__init__(state["max_open"], state["shards"])
