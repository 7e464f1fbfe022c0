"""Batch memory: where the loader decodes its images, and how a finished batch is handed over.

The DataLoader's batched fetch (``__getitems__``) decodes each image straight into its slot of
an (n, 3, R, R) uint8 batch and returns a ``FilledBatch``; ``collate`` recognises it and hands
the batch on as it is. Decoding elsewhere and stacking afterwards would read every image back
from memory once more.

Where the batch memory comes from:

- in a loader worker, fresh shared memory per batch: the batch crosses to the main process
  without a copy, as with torch's default collate;
- in the main process (``num_workers=0``: the benchmark, evaluation, small runs), a ``Ring`` of
  ``DEPTH`` batches per loader, reused in turn: glibc hands a block above its mmap threshold
  (32 MB; a batch of 256 at 256 px is 50 MB) back to the kernel when it is freed, so a fresh
  batch would pay its page faults again every time.
"""

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

# A loader's batch stays valid until two more batches of that loader have been made. Lightning
# holds two batches of a loader at once (the one a step uses, the one it prefetched); the third
# slot is the margin for code that keeps the previous batch until the next one is made.
DEPTH = 3


class Ring:
    """``depth`` tensors of one shape handed out in turn: the tensor of call k comes back at call
    k + depth, not before. A call with another shape starts a new ring (the tensors already handed
    out are never written again). Pickles empty: a spawned loader worker makes its own memory."""

    def __init__(self, depth: int):
        if depth < 1:
            raise ValueError(f"a ring needs at least one slot, got depth={depth}")
        self.depth = depth
        self.slots: list[torch.Tensor] = []
        self.turn = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        shape = tuple(shape)
        if self.slots and (tuple(self.slots[0].shape) != shape or self.slots[0].dtype != dtype):
            self.slots, self.turn = [], 0
        if len(self.slots) < self.depth:
            # numpy memory: numpy asks for transparent huge pages for large arrays, which saves TLB
            # misses on every reuse (measured: the loader and the CPU batch ops 2-3% faster than torch.empty).
            self.slots.append(torch.from_numpy(np.empty(shape, dtype=torch.empty(0, dtype=dtype).numpy().dtype)))
            return self.slots[-1]
        slot = self.slots[self.turn]
        self.turn = (self.turn + 1) % self.depth
        return slot

    def __getstate__(self):
        return {"depth": self.depth}

    def __setstate__(self, state):
        self.__init__(state["depth"])


class FilledBatch(list):
    """The samples of one batched fetch, ``(image, *rest)`` each, whose images are the slots of
    ``images``, one (n, 3, R, R) batch already made. Still a list of samples, so that any
    collate function (torch's default one too) can read it."""

    def __init__(self, images: torch.Tensor, samples: list[tuple]):
        super().__init__(samples)
        self.images = images


def image_memory(size: int) -> torch.Tensor:
    """(3, size, size) uint8 over HWC memory, the layout the decoders write."""
    return torch.empty((size, size, 3), dtype=torch.uint8).permute(2, 0, 1)


def batch_memory(n: int, shape: tuple[int, ...], ring: Ring) -> torch.Tensor:
    """(n, 3, R, R) uint8 in channels-last memory: the decoders' own layout (HWC), so that an
    image is decoded straight into its slot; the batch ops read it as is. Shared memory in a
    loader worker, the loader's ``ring`` in the main process."""
    c, h, w = shape
    if get_worker_info() is not None:
        memory = torch.empty((n, h, w, c), dtype=torch.uint8).share_memory_()
    else:
        memory = ring.take((n, h, w, c), torch.uint8)
    return memory.permute(0, 3, 1, 2)


def fetch_into_slots(decode_into, indices: list[int], shape: tuple[int, ...], ring: Ring) -> FilledBatch:
    """The DataLoader's batched fetch: ``decode_into(i, slot)`` decodes image i into its slot and
    returns the rest of the sample (a label, or a tuple)."""
    batch = batch_memory(len(indices), shape, ring)
    samples = []
    for slot, i in zip(batch, indices):
        rest = decode_into(i, slot)
        samples.append((slot, *(rest if isinstance(rest, tuple) else (rest,))))
    return FilledBatch(batch, samples)


def collate(batch: list) -> tuple:
    """(x, y) batches; (x, y, skipped) for the training loader, whose samples carry what they skipped.
    Encoded images (1-D byte tensors) stay a list, decoded later as a batch."""
    if isinstance(batch, FilledBatch):
        x = batch.images
    elif batch[0][0].ndim == 1:
        x = [b[0] for b in batch]
    elif get_worker_info() is not None:
        x = default_collate([b[0] for b in batch])  # into shared memory
    else:
        x = torch.stack([b[0] for b in batch])
    y = torch.tensor([b[1] for b in batch])
    if len(batch[0]) == 2:
        return x, y
    return x, y, [s for b in batch for s in b[2]]
