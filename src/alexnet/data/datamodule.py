"""LightningDataModules: a prepared store, the official ILSVRC archives, or any
``train/<class>/``, ``val/<class>/`` folder (ImageNet, Imagenette, the built-in synthetic set),
with the paper's preprocessing and augmentation."""

import logging
import os
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from alexnet.data import synthetic
from alexnet.data.images import EncodedRecords, ImageRecords, SkipUnreadable, UnreadableCounter, collate
from alexnet.data.sources import open_source
from alexnet.data.stats import load_or_compute
from alexnet.data.store import is_store
from alexnet.data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC, BatchAugment, MeanMode, decode_batch

log = logging.getLogger(__name__)


class ImageFolderDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str,
        num_classes: int | None = None,
        store: str | None = None,
        cache_dir: str | None = None,
        max_bad_images: int = 100,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        resize: int = 256,
        crop_size: int = 227,
        flip: bool = True,
        mean: MeanMode = "per_pixel",
        pca_lighting: bool = True,
        pca_eigen: str = "dataset",
        pca_std: float = 0.1,
        stats_images: int = 10000,
        test_crops: int = 10,
        batch_size: int = 128,
        num_workers: int = -1,
        decode_on: Literal["loader", "device"] = "loader",
    ):
        super().__init__()
        if crop_size > resize:
            raise ValueError(f"crop_size ({crop_size}) must not exceed resize ({resize})")
        if mean not in ("per_pixel", "per_channel", "none"):
            raise ValueError(f"mean must be per_pixel, per_channel or none, got {mean!r}")
        if pca_eigen not in ("dataset", "imagenet"):
            raise ValueError(f"pca_eigen must be 'dataset' or 'imagenet', got {pca_eigen!r}")
        if test_crops not in (1, 10):
            raise ValueError(f"test_crops must be 1 (centre) or 10 (corners, centre and reflections), got {test_crops}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_bad_images < 0:
            raise ValueError(f"max_bad_images must be >= 0, got {max_bad_images}")
        if decode_on not in ("loader", "device"):
            raise ValueError(f"decode_on must be 'loader' or 'device', got {decode_on!r}")
        self.root = Path(root)
        self.store = Path(store) if store else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.unreadable = UnreadableCounter(max_bad_images)
        self.num_classes = num_classes
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.resize, self.crop_size, self.flip = resize, crop_size, flip
        self.mean_mode, self.pca_lighting, self.pca_eigen, self.pca_std = mean, pca_lighting, pca_eigen, pca_std
        self.stats_images, self.test_crops, self.batch_size = stats_images, test_crops, batch_size
        # -1: one worker per core, leaving one for the training process.
        self.num_workers = max(0, (os.cpu_count() or 1) - 1) if num_workers < 0 else num_workers
        self.decode_on = decode_on
        self.datasets: dict[str, ImageRecords] = {}
        self.source = None
        self.augment: BatchAugment | None = None

    def check_root(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root: folder {self.root.resolve()} does not exist")

    def data_root(self) -> Path:
        """The prepared store when there is one, the raw layout (folders or archives) otherwise."""
        if self.store is not None and is_store(self.store):
            return self.store
        if self.store is not None:
            log.info("data.store %s holds no prepared store: reading the raw layout in %s (python -m alexnet.data.prepare makes one)",
                     self.store, self.root)
        self.check_root()
        return self.root

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        root = self.data_root()
        self.source = open_source(root, self.cache_dir or root)
        if self.decode_on == "device" and self.source.kind != "store":
            raise ValueError(f"data.decode_on=device decodes a prepared store's JPEGs (all verified, {self.resize}px); {root} is "
                             f"not one: make it with python -m alexnet.data.prepare, or use data.decode_on=loader")
        if self.source.kind == "store" and self.source.resize != self.resize:
            raise ValueError(f"data.resize is {self.resize} but the store {root} holds {self.source.resize}px images (data.store / data.root)")
        by_split: dict[str, ImageRecords] = {}
        for name, split in self.splits.items():
            if split not in by_split:
                by_split[split] = ImageRecords(self.source.records(split), self.resize)
                self.warn_unreadable(split)
            self.datasets[name] = by_split[split]
        classes = self.datasets["train"].classes
        found = len(classes)
        for name in ("val", "test"):
            if self.datasets[name].classes != classes:
                raise ValueError(f"data.root: the '{self.splits[name]}' classes differ from the '{self.splits['train']}' classes in {root}")
        if self.num_classes is not None and self.num_classes != found:
            raise ValueError(f"data.num_classes is {self.num_classes} but the '{self.splits['train']}' split of {root} has {found} classes")
        self.num_classes = found
        self.augment = self.build_augment()

    def warn_unreadable(self, split: str) -> None:
        """A store's val/test split lacks the images prepare could not read: say so, never silently."""
        missing = self.source.unreadable(split) if self.source.kind == "store" else 0
        if missing:
            log.warning("store %s: %d '%s' images were unreadable at prepare time and are not in this split (listed in %s)",
                        self.source.root, missing, split, self.source.root / "unreadable.tsv")

    def build_augment(self) -> BatchAugment:
        stats = None
        if self.mean_mode != "none" or (self.pca_lighting and self.pca_eigen == "dataset"):
            train = self.datasets["train"]
            stats = load_or_compute(SkipUnreadable(train), train.ids, self.cache_dir or self.source.root, self.splits["train"],
                                    self.resize, self.stats_images, self.num_workers, collate_fn=collate)
        if self.mean_mode == "per_pixel":
            mean = stats["mean_image"]
        elif self.mean_mode == "per_channel":
            mean = stats["mean_image"].mean((1, 2), keepdim=True)
        else:
            mean = torch.zeros(3, 1, 1)
        eigval = eigvec = None
        if self.pca_lighting:
            if self.pca_eigen == "dataset":
                eigval, eigvec = stats["eigval"], stats["eigvec"]
            else:
                eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
            eigval = eigval * 255.0  # the eigen-decomposition is on the 0..1 scale, pixels on 0..255
        return BatchAugment(mean, self.crop_size, self.flip, eigval, eigvec, self.pca_std)

    def class_names(self) -> list[str]:
        """Human-readable names, in class-index order: the devkit's, the store's, or ``labels.txt`` /
        ``synsets.txt`` (``wnid name`` per line) beside the folders; else the wnids."""
        return self.source.names_of(self.datasets["train"].classes)

    def loader(self, stage: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[stage]
        if self.decode_on == "device":  # the store's images were all decoded once by prepare: none to skip
            dataset = EncodedRecords(dataset.records, self.resize)
        elif stage == "train":
            dataset = SkipUnreadable(dataset)
        return DataLoader(
            dataset,
            collate_fn=collate,
            batch_size=self.device_batch_size(),
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def device_batch_size(self) -> int:
        """data.batch_size is the global batch (section 5: 128); each of the N DDP processes loads
        1/N of it, so 1 and N devices train the same recipe."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ValueError(f"data.batch_size ({self.batch_size}) is the global batch and must divide evenly over the {world} devices")
        return self.batch_size // world

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if self.decode_on != "device":
            return batch
        x, y = batch
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        return decode_batch(x, device), y

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y, *skipped = batch
        self.augment.to(x.device)
        if self.trainer is not None and self.trainer.training:
            self.unreadable.add(self.trainer.current_epoch, skipped[0] if skipped else [])
            return self.augment.train_batch(x), y
        self.unreadable.report()  # the epoch's training part is over
        # Validation steers the lr schedule on the centre crop; the test uses the paper's ten crops.
        testing = self.trainer is not None and self.trainer.testing
        return self.augment.eval_batch(x, self.test_crops if testing else 1), y

    def teardown(self, stage: str) -> None:
        self.unreadable.report()


class SyntheticDataModule(ImageFolderDataModule):
    """The built-in dataset (see ``alexnet.data.synthetic``), generated into ``root`` on first use."""

    def __init__(self, train_per_class: int, val_per_class: int, image_size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.spec = dict(train_per_class=train_per_class, val_per_class=val_per_class, image_size=image_size, seed=seed)

    def check_root(self) -> None:
        marker = self.root / synthetic.MARKER
        if not marker.exists():
            raise FileNotFoundError(f"data.root: the synthetic dataset was not generated in {self.root} (prepare_data makes it)")

    def prepare_data(self) -> None:
        synthetic.generate(self.root, **self.spec)
