"""The datasets the loaders read: decoded images, a store's encoded JPEGs, and the training
wrapper that skips what does not decode.

Validation and test never skip: an unreadable image there stops the run naming the file (the
error rates must be over the whole split); on a folder layout ``readable`` has decoded them all
before the first training step. Training skips it and its name travels with the
batch, to be counted in the main process (``unreadable``).
"""

import torch
from torch.utils.data import Dataset

from alexnet.data.batches import DEPTH, FilledBatch, Ring, fetch_into_slots, image_memory
from alexnet.data.decode import UnreadableImage, decode_into
from alexnet.data.records import ByteReader, Records


class ImageRecords(Dataset):
    """(uint8 (3, R, R), label) per record: decoded and centre-squared in the loader workers.
    Each instance has its own batch memory (``batches``): make one per loader."""

    def __init__(self, records: Records, resize: int):
        self.records, self.resize = records, resize
        self.reader = ByteReader(shards=records.shards)
        self.batches = Ring(DEPTH)

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
        """Decodes image i into ``out`` (3, R, R) and returns its label; ``UnreadableImage`` names the file."""
        image_id, file, offset, size, label = self.records.item(i)
        where = file if size < 0 else f"{file} [{image_id}]"
        try:
            decode_into(self.reader.read(file, offset, size), self.resize, out)
            return label
        except (OSError, UnreadableImage) as err:
            raise UnreadableImage(f"{where}: {err}") from err

    def __getitems__(self, indices: list[int]) -> FilledBatch:
        return fetch_into_slots(self.decode_into, indices, (3, self.resize, self.resize), self.batches)


class EncodedRecords(ImageRecords):
    """(the JPEG's bytes as a 1-D uint8 tensor, label): a prepared store's images, to be decoded
    as a batch on the batch's device (``data.decode_on=device``: nvJPEG on a GPU)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        _, file, offset, size, label = self.records.item(i)
        return torch.frombuffer(bytearray(self.reader.read(file, offset, size)), dtype=torch.uint8), label

    def __getitems__(self, indices: list[int]) -> list:
        return [self[i] for i in indices]


class SkipUnreadable(Dataset):
    """Training and the statistics pass: an unreadable image gives its place to the next readable
    one (the batch keeps its shape), and its name travels with the batch."""

    def __init__(self, dataset: ImageRecords, max_tries: int = 16):
        self.dataset, self.max_tries = dataset, max_tries
        self.batches = Ring(DEPTH)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def records(self) -> Records:
        return self.dataset.records

    @property
    def reader(self) -> ByteReader:
        return self.dataset.reader

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, tuple[str, ...]]:
        x = image_memory(self.dataset.resize)
        return x, *self.decode_into(i, x)

    def decode_into(self, i: int, out: torch.Tensor) -> tuple[int, tuple[str, ...]]:
        """(label, what was skipped): image i's own failure only. A replacement that fails too is
        reported when its own index comes, so that each bad image counts once per epoch."""
        skipped: tuple[str, ...] = ()
        for k in range(self.max_tries):
            try:
                return self.dataset.decode_into((i + k) % len(self.dataset), out), skipped
            except UnreadableImage as err:
                skipped = skipped or (str(err),)
        raise UnreadableImage(f"{self.max_tries} unreadable images in a row from index {i}, e.g. {skipped[0]}")

    def __getitems__(self, indices: list[int]) -> FilledBatch:
        return fetch_into_slots(self.decode_into, indices, (3, self.dataset.resize, self.dataset.resize), self.batches)
