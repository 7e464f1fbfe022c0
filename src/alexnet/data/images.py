"""The dataset of decoded images, and what happens to those that do not decode.

Validation and test never skip: an unreadable image there stops the run naming the file
(the error rates must be over the whole split). Training skips it, counts it, and stops past
``data.max_bad_images`` in one epoch.
"""

import logging

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from alexnet.data.buffers import BufferPool
from alexnet.data.records import ByteReader, Records
from alexnet.data.transforms import UnreadableImage, decode_into

log = logging.getLogger(__name__)


class ImageRecords(Dataset):
    """(uint8 (3, R, R), label) per record: decoded and centre-squared in the loader workers."""

    def __init__(self, records: Records, resize: int):
        self.records, self.resize = records, resize
        self.reader = ByteReader()

    @property
    def classes(self) -> list[str]:
        return self.records.classes

    @property
    def ids(self) -> list[str]:
        return self.records.ids

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = image_memory(self.resize)
        return x, self.decode_into(i, x)

    def decode_into(self, i: int, out: torch.Tensor) -> int:
        """Decodes image i into ``out`` (3, R, R) and returns its label."""
        image_id, file, offset, size, label = self.records.item(i)
        where = file if size < 0 else f"{file} [{image_id}]"
        try:
            decode_into(self.reader.read(file, offset, size), self.resize, out)
            return label
        except (OSError, UnreadableImage) as err:
            raise UnreadableImage(f"{where}: {err}") from err

    def __getitems__(self, indices: list[int]) -> list:
        return fetch_into_slots(self.decode_into, indices, (3, self.resize, self.resize))


class EncodedRecords(ImageRecords):
    """(the JPEG's bytes as a 1-D uint8 tensor, label): a prepared store's images, to be decoded
    as a batch on the batch's device (``data.decode_on=device``: nvJPEG on a GPU)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        _, file, offset, size, label = self.records.item(i)
        return torch.frombuffer(bytearray(self.reader.read(file, offset, size)), dtype=torch.uint8), label

    def __getitems__(self, indices: list[int]) -> list:
        return [self[i] for i in indices]


class SkipUnreadable(Dataset):
    """Training only: an unreadable image gives its place to the next readable one (the batch
    keeps its shape), and its name travels with the batch to be counted in the main process."""

    def __init__(self, dataset: ImageRecords, max_tries: int = 16):
        self.dataset, self.max_tries = dataset, max_tries

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, tuple[str, ...]]:
        x = image_memory(self.dataset.resize)
        return x, *self.decode_into(i, x)

    def decode_into(self, i: int, out: torch.Tensor) -> tuple[int, tuple[str, ...]]:
        skipped: list[str] = []
        for k in range(self.max_tries):
            try:
                return self.dataset.decode_into((i + k) % len(self.dataset), out), tuple(skipped)
            except UnreadableImage as err:
                skipped.append(str(err))
        raise UnreadableImage(f"{self.max_tries} unreadable images in a row from index {i}, e.g. {skipped[0]}")

    def __getitems__(self, indices: list[int]) -> list:
        return fetch_into_slots(self.decode_into, indices, (3, self.dataset.resize, self.dataset.resize))


STACKS = BufferPool(4)  # the train and the val loader, each holding a batch while making the next


def image_memory(size: int) -> torch.Tensor:
    """(3, size, size) uint8 over HWC memory, the layout the decoders write."""
    return torch.empty((size, size, 3), dtype=torch.uint8).permute(2, 0, 1)


def batch_memory(n: int, shape: tuple[int, ...]) -> torch.Tensor:
    """(n, 3, R, R) uint8 in channels-last memory: the decoders' own layout (HWC), so that an
    image is decoded straight into its slot (the fallback path copies it in: 0.02 ms per image),
    where transposing into a CHW batch cost 0.11 ms (measured, one core). The batch ops read it as is.
    In a loader worker the memory is shared (the batch crosses to the main process without a
    copy, as with torch's default collate); in the main process (num_workers=0, the benchmark)
    it is reused: a fresh 25 MB batch pays 0.3 ms per image in page faults (see ``buffers``)."""
    c, h, w = shape
    if get_worker_info() is not None:
        memory = torch.empty((n, h, w, c), dtype=torch.uint8).share_memory_()
    else:
        memory = STACKS.empty((n, h, w, c), np.uint8)
    return memory.permute(0, 3, 1, 2)


def fetch_into_slots(decode_into, indices: list[int], shape: tuple[int, ...]) -> list:
    """The DataLoader's batched fetch (``__getitems__``): each image is decoded straight into its
    batch slot (``decode_into(i, slot)`` returns the rest of the sample). Decoding elsewhere and
    stacking afterwards read every image back from memory: 0.13 ms per image, a third of the
    decode (measured, one core). ``collate`` then finds the batch already made."""
    batch = batch_memory(len(indices), shape)
    samples = []
    for slot, i in zip(batch, indices):
        rest = decode_into(i, slot)
        samples.append((slot, *(rest if isinstance(rest, tuple) else (rest,))))
    return samples


def stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    first, base = images[0], images[0]._base
    if base is not None and base.shape[0] == len(images) and base.data_ptr() == first.data_ptr():
        batch = base.as_strided((len(images), *first.shape), (base.stride(0), *first.stride()), base.storage_offset())
        if [x.data_ptr() for x in images] == [b.data_ptr() for b in batch]:
            return batch  # the slots fetch_into_slots filled: the batch is made
    if get_worker_info() is not None:
        return default_collate(images)
    return torch.stack(images, out=STACKS.empty((len(images), *images[0].shape), np.uint8))


def collate(batch: list) -> tuple:
    """(x, y) batches; (x, y, skipped) for the training loader, whose samples carry what they skipped.
    Encoded images (1-D byte tensors) stay a list, decoded later as a batch."""
    images = [b[0] for b in batch]
    x = images if images[0].ndim == 1 else stack_images(images)
    y = torch.tensor([b[1] for b in batch])
    if len(batch[0]) == 2:
        return x, y
    return x, y, [s for b in batch for s in b[2]]


class TooManyUnreadableImages(RuntimeError):
    pass


class UnreadableCounter:
    """Counts the training images skipped in each epoch, reports the count when the epoch's
    training ends, and fails as soon as it passes the limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.epoch: int | None = None
        self.count = 0
        self.total = 0

    def add(self, epoch: int, skipped: list[str]) -> None:
        if epoch != self.epoch:
            self.report()
            self.epoch = epoch
        for message in skipped:
            if self.count < 10:
                log.warning("skipped an unreadable training image: %s", message)
            self.count += 1
            self.total += 1
        if self.count > self.limit:
            raise TooManyUnreadableImages(
                f"data.max_bad_images: {self.count} unreadable training images in epoch {epoch}, more than the {self.limit} allowed "
                f"(the first ones are logged above). Repair or remove them (python -m alexnet.data.prepare lists every one in "
                f"its manifest, unreadable.tsv), or raise data.max_bad_images."
            )

    def report(self) -> None:
        if self.count:
            log.warning("epoch %d: skipped %d unreadable training images (data.max_bad_images=%d)", self.epoch, self.count, self.limit)
        self.count = 0
