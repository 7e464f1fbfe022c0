"""The training split of a prepared store read as a stream of shards (``data.stream``): each rank
and loader worker reads its own contiguous run of shards, in sequence, one piece ahead.

Each epoch the split's shards are put in an order drawn from (seed, epoch), the same on every rank.
The records, shard after shard in that order (each shard's in its own order), are cut into one
contiguous part per rank, of equal length: padded by wrapping to the start, as torch's
DistributedSampler pads, when the ranks do not divide the split. Each rank's part is cut into
whole batches, as many as the map-style loader gives a rank (the last partial one dropped for
training), dealt to the loader workers in contiguous runs. So every image is read once per epoch
across the job (the padding and the dropped tail aside), and only the shard at each cut is
shared between two workers: each fetches only its byte range of it. A shard read whole goes
through the shard cache (``remote.ShardCache``).

Within a worker the images pass through a shuffle buffer of ``data.shuffle_buffer`` images. That
is not the local store's shuffle (an exact permutation of the whole split per epoch, the sampler's):
an image's place in the epoch is its shard's place in the shard order, give or take the buffer, and
a batch holds images of neighbouring shards. ``prepare`` shuffles the training images once before
cutting them into shards, so a shard is a random sample of the split, never one class.

Decoding, augmentation and the skipping of unreadable images are the map-style datasets' own: a
batch is ``dataset.__getitems__(indices)`` (``datasets``), the loader's batch size is None.
"""

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from alexnet.data.records import ByteReader, HeldBytes, Records


def rank_batches(n: int, world: int, batch_size: int, drop_last: bool) -> int:
    """A rank's batches per epoch: what the map-style loader behind torch's DistributedSampler gives."""
    per_rank = -(-n // world)
    return per_rank // batch_size if drop_last else -(-per_rank // batch_size)


def epoch_order(file_of: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Every record index, shard after shard in the epoch's shard order (drawn from seed and epoch
    alone, so the same on every rank), each shard's records in their own order."""
    starts = np.flatnonzero(np.r_[True, np.diff(file_of) != 0])
    stops = np.r_[starts[1:], len(file_of)]
    shards = np.random.default_rng([seed, epoch]).permutation(len(starts))
    return np.concatenate([np.arange(starts[s], stops[s]) for s in shards])


def worker_part(
    order: np.ndarray, *, rank: int, world: int, worker: int, workers: int, batch_size: int, drop_last: bool
) -> np.ndarray:
    """The records that loader worker WORKER of rank RANK reads this epoch, in order: its rank's
    contiguous part of ORDER (wrapped to the start to be as long as the others), cut in whole batches."""
    per_rank = -(-len(order) // world)
    padded = np.resize(order, per_rank * world)  # np.resize repeats from the start
    mine = padded[rank * per_rank : (rank + 1) * per_rank]
    batches = rank_batches(len(order), world, batch_size, drop_last)
    first, last = batches * worker // workers, batches * (worker + 1) // workers
    return mine[first * batch_size : min(last * batch_size, per_rank)]


def pieces(part: np.ndarray, file_of: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) spans of PART that are consecutive records of one shard: what one read fetches."""
    cut = (np.diff(part) != 1) | (np.diff(file_of[part]) != 0)
    bounds = np.r_[0, np.flatnonzero(cut) + 1, len(part)].tolist()
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def buffer_shuffle(items: Iterable, size: int, rng: np.random.Generator) -> Iterator:
    """ITEMS in a random order within a window of SIZE: each comes out at a random draw from the
    SIZE latest arrivals (0 or 1: as they come)."""
    buffer: list = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            j = int(rng.integers(len(buffer)))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


class ReadAhead:
    """A worker's pieces (``pieces`` of its ``part``): each fetched in a background thread while the
    one before it is read, and held in the reader until its last image is decoded. A piece that is
    a whole shard goes through the shard cache and is read mapped (an eviction meanwhile does not
    take it away); a part of a shard is read from the cache when it is there, else its byte range
    alone is fetched into memory. A local store's shards are mapped as they are."""

    def __init__(self, records: Records, reader: ByteReader, part: np.ndarray):
        self.records, self.reader, self.part = records, reader, part
        self.bounds = pieces(part, records.file_of) if len(part) else []
        self.shard_size = np.bincount(records.file_of, minlength=len(records.files))
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
        self.fetching: dict[int, Future] = {}
        self.held: dict[int, HeldBytes] = {}
        self.left: dict[int, int] = {}  # images of a held piece not decoded yet

    def arrivals(self) -> Iterator[tuple[int, int]]:
        """(piece, record) in the part's order, each piece's bytes in hand before its first record."""
        for k, (lo, hi) in enumerate(self.bounds):
            self.take(k)
            for i in self.part[lo:hi].tolist():
                yield k, i

    def take(self, k: int) -> None:
        future = self.fetching.pop(k, None) or self.pool.submit(self.fetch, k)
        if k + 1 < len(self.bounds):  # one piece ahead: the cache bound allows for two per worker
            self.fetching[k + 1] = self.pool.submit(self.fetch, k + 1)
        held = future.result()
        self.reader.hold(held)
        lo, hi = self.bounds[k]
        self.held[k], self.left[k] = held, hi - lo

    def fetch(self, k: int) -> HeldBytes:
        lo, hi = self.bounds[k]
        records = self.part[lo:hi]
        file_index = int(self.records.file_of[records[0]])
        file, shards = self.records.files[file_index], self.records.shards
        if shards is None:
            return HeldBytes.mapped(file, file)
        whole = hi - lo == self.shard_size[file_index]
        for _ in range(2):
            path = shards.local(file) if whole else shards.cached(file)
            if path is None:
                start = int(self.records.offsets[records].min())
                end = int((self.records.offsets[records] + self.records.sizes[records]).max())
                return HeldBytes(file, start, shards.range(file, start, end))
            try:
                return HeldBytes.mapped(file, str(path))
            except FileNotFoundError:  # evicted by another worker between the fetch and the open
                continue
        raise OSError(f"{file}: evicted from the cache as soon as fetched (data.cache_gb too small for the loader workers?)")

    def done(self, ks: Iterable[int]) -> None:
        for k in ks:
            self.left[k] -= 1
            if not self.left[k]:
                del self.left[k]
                self.reader.release(self.held.pop(k))

    def close(self) -> None:
        for future in self.fetching.values():
            future.cancel()
        self.pool.shutdown(wait=True)
        for future in self.fetching.values():
            if not future.cancelled() and future.exception() is None:
                future.result().close()
        for held in self.held.values():
            self.reader.release(held)
        self.fetching, self.held, self.left = {}, {}, {}


class ShardStream(IterableDataset):
    """The training batches of one rank, streamed (module docstring). DATASET decodes a batch
    of record indices (``ImageRecords``, ``EncodedRecords`` or ``SkipUnreadable``); its length is
    this rank's batches per epoch. The epoch comes from ``set_epoch``, through shared memory, so
    that persistent loader workers see it too."""

    def __init__(self, dataset, *, batch_size: int, drop_last: bool, rank: int, world: int, seed: int, shuffle_buffer: int):
        self.dataset, self.records, self.reader = dataset, dataset.records, dataset.reader
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.world, self.seed, self.shuffle_buffer = rank, world, seed, shuffle_buffer
        self.epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self.epoch.fill_(epoch)

    def __len__(self) -> int:
        return rank_batches(len(self.records), self.world, self.batch_size, self.drop_last)

    def part(self, epoch: int, worker: int, workers: int) -> np.ndarray:
        order = epoch_order(self.records.file_of, self.seed, epoch)
        return worker_part(
            order,
            rank=self.rank,
            world=self.world,
            worker=worker,
            workers=workers,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
        )

    def shuffle_rng(self, epoch: int, worker: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, self.rank, worker])

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = int(self.epoch)
        ahead = ReadAhead(self.records, self.reader, self.part(epoch, worker, workers))
        try:
            batch: list[tuple[int, int]] = []
            for item in buffer_shuffle(ahead.arrivals(), self.shuffle_buffer, self.shuffle_rng(epoch, worker)):
                batch.append(item)
                if len(batch) == self.batch_size:
                    yield self.decode(batch, ahead)
                    batch = []
            if batch:  # only when not dropping the last: the rank's last batch, in its last worker
                yield self.decode(batch, ahead)
        finally:
            ahead.close()

    def decode(self, batch: list[tuple[int, int]], ahead: ReadAhead):
        out = self.dataset.__getitems__([i for _, i in batch])
        ahead.done(k for k, _ in batch)
        return out


class StreamLoader(DataLoader):
    """A DataLoader of a ``ShardStream``'s batches (batch size None: the stream makes them) that
    gives the stream its epoch as each epoch's iteration starts. Lightning sets the epoch of a
    loader's sampler only, and a loader of an iterable dataset has none to set."""

    def __init__(self, dataset: ShardStream, *, epoch: Callable[[], int] | None, **kwargs):
        super().__init__(dataset, batch_size=None, **kwargs)
        self.epoch_of = epoch  # None: the epoch stays what set_epoch last made it

    def __iter__(self):
        if self.epoch_of is not None:
            self.dataset.set_epoch(self.epoch_of())
        return super().__iter__()


def run_seed() -> int:
    """The run's seed as ``seed_everything`` leaves it for every rank (Lightning's distributed
    sampler reads it the same way; 0 when no seed was set, as there)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))
