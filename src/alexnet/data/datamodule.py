"""LightningDataModules: a prepared store, the official ILSVRC archives, or any
``train/<class>/``, ``val/<class>/`` folder (ImageNet, Imagenette, the built-in synthetic set),
with the paper's preprocessing and augmentation.

What identifies the training data, for checkpoints and caches: ``classes`` (the ordered class
names; class index = position) and ``train_fingerprint()`` (its files' names and sizes).
``data.num_classes`` may be left out (null): ``resolve_num_classes()`` counts the classes."""

import logging
import os
import weakref
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from alexnet.data import check, fingerprint, readable, synthetic
from alexnet.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, BatchAugment, MeanMode, check_crops
from alexnet.data.batches import collate
from alexnet.data.datasets import EncodedRecords, ImageRecords, SkipUnreadable
from alexnet.data.decode import decode_batch
from alexnet.data.records import Records
from alexnet.data.remote import RemoteStoreSource, is_url
from alexnet.data.sources import class_difference, open_source
from alexnet.data.stats import load_or_compute, whole_shards
from alexnet.data.store import StoreSource, check_prepared_from, is_store
from alexnet.data.stream import ShardStream, StreamLoader, run_seed
from alexnet.data.unreadable import UnreadableCounter
from alexnet.data.workers import worker_init
from alexnet.errors import ConfigError
from alexnet.lightning_private import shutdown_workers
from alexnet.paths import RunDir

log = logging.getLogger(__name__)


def to_plain(options) -> dict:
    """Hydra passes a config node; the filesystem takes plain dicts (nested ones: client_kwargs)."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(options, resolve=True) if isinstance(options, DictConfig) else dict(options)


class ImageFolderDataModule(L.LightningDataModule):
    # Every argument is required: conf/data/imagefolder.yaml holds the values (section 2 and 4.1's,
    # with the paper's words beside them); this signature is the schema training/config.py checks.
    def __init__(
        self,
        *,
        root: str,
        num_classes: int | None,
        store: str | None,
        cache_dir: str | None,
        cache_gb: float,
        storage_options: dict,
        stream: bool | None,
        shuffle_buffer: int,
        max_bad_images: int,
        train_split: str,
        val_split: str,
        test_split: str,
        resize: int,
        crop_size: int,
        flip: bool,
        mean: MeanMode,
        pca_lighting: bool,
        pca_eigen: Literal["dataset", "imagenet"],
        pca_std: float,
        stats_images: int,
        test_crops: int,
        batch_size: int,
        num_workers: int,
        decode_on: Literal["loader", "device"],
    ):
        super().__init__()
        # The Literal types (mean, pca_eigen, decode_on) are checked by the config's schema check;
        # these are what a type cannot say.
        if crop_size > resize:
            raise ValueError(f"crop_size ({crop_size}) must not exceed resize ({resize})")
        check_crops(test_crops, "test_crops")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_bad_images < 0:
            raise ValueError(f"max_bad_images must be >= 0, got {max_bad_images}")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0 images, got {shuffle_buffer}")
        # "~" expanded: Hydra passes data.root='~/data' as written, and no shell expands it.
        self.root = Path(root).expanduser()
        # A URL (s3://, gs://, https://, file://) is read through fsspec (``remote``); a path from disk.
        self.store = store if is_url(store) else Path(store).expanduser() if store else None
        self.cache_gb, self.storage_options = cache_gb, to_plain(storage_options)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.stream, self.shuffle_buffer = stream, shuffle_buffer
        self.streamed = False  # the training split read as a stream of shards (``stream``): set by setup
        self.unreadable = UnreadableCounter(max_bad_images)
        # Every loader made and still in use, so that their workers can be stopped (close_loaders); weak:
        # a loader no one holds stops its own workers, and its batch memory is not kept here.
        self.loaders: weakref.WeakSet[DataLoader] = weakref.WeakSet()
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
        self._classes: list[str] | None = None
        self.checked: check.Report | None = None

    def check_root(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root: folder {self.root.resolve()} does not exist")

    def data_root(self) -> Path:
        """The prepared store when there is one, the raw layout (folders or archives) otherwise."""
        if is_url(self.store) or self.store is not None and is_store(self.store):
            return self.store
        if self.store is not None:
            log.info(
                "data.store %s holds no prepared store: reading the raw layout in %s (python -m alexnet.data.prepare makes one)",
                self.store,
                self.root,
            )
        self.check_root()
        return self.root

    def open(self):
        """The source read (``sources``): opened once. A store read in place of ``data.root`` must
        have been prepared from what the root holds now (``store.check_prepared_from``)."""
        if self.source is None:
            root = self.data_root()
            if is_url(root):
                source = RemoteStoreSource(root, self.cache_dir, self.storage_options, self.cache_gb)
            else:
                source = open_source(root, self.cache_dir)
            if root == self.store and self.root.is_dir():
                raw = open_source(self.root, self.cache_dir)
                both = [s for s in dict.fromkeys(self.splits.values()) if s in source.splits() and s in raw.splits()]
                check_prepared_from(source, raw, both)
            self.source = source
        return self.source

    @property
    def classes(self) -> list[str]:
        """The ordered class names (wnids or folder names; class index = position) of the training
        split, read without listing the images: the folder names, the devkit, or the store's index."""
        if self._classes is None:
            self._classes = self.open().classes(self.splits["train"])
        return self._classes

    def resolve_num_classes(self) -> int:
        """``data.num_classes`` when given and right, the number of classes found when null."""
        found = len(self.classes)
        if self.num_classes is not None and self.num_classes != found:
            raise ValueError(
                f"data.num_classes is {self.num_classes} but data.root {self.root} has {found} classes "
                f"in its '{self.splits['train']}' split (leave data.num_classes out to use what is found)"
            )
        self.num_classes = found
        return found

    def train_fingerprint(self) -> str:
        """The training split's ``split_fingerprint``: what a checkpoint's classes were learnt from."""
        return self.split_fingerprint(self.splits["train"])

    def split_fingerprint(self, split: str) -> str:
        """sha1 of a split's files, names and sizes (``fingerprint``); for a store, of the files it
        was prepared from, so that a store and its source give the same one."""
        source = self.open()
        recorded = source.source_fingerprint(split) if isinstance(source, StoreSource) else None
        return recorded or fingerprint.listing(source.files(split), source.root, mtimes=False)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.open()
        root = self.source.root
        if self.decode_on == "device" and self.source.kind != "store":
            raise ValueError(
                f"data.decode_on=device decodes a prepared store's JPEGs (all verified, {self.resize}px); {root} is "
                f"not one: make it with python -m alexnet.data.prepare, or use data.decode_on=loader"
            )
        if self.source.kind == "store" and self.source.resize != self.resize:
            raise ValueError(
                f"data.resize is {self.resize} but the store {root} holds {self.source.resize}px images (data.store / data.root)"
            )
        by_split: dict[str, ImageRecords] = {}
        for name, split in self.splits.items():
            if split not in by_split:
                by_split[split] = ImageRecords(self.source.records(split), self.resize)
                self.warn_unreadable(split)
            self.datasets[name] = by_split[split]
        for name in ("val", "test"):
            if self.datasets[name].classes != self.classes:
                raise ValueError(
                    f"data.root: the '{self.splits[name]}' split of {root} has other classes than its "
                    f"'{self.splits['train']}' split: {class_difference(self.classes, self.datasets[name].classes)}"
                )
        self.resolve_num_classes()
        self.streamed = self.streams_training()
        # Training's start only: eval.py and predict.py set up a run's data to test or preprocess,
        # where decoding the whole split first (predict: for one photo) would be work done twice.
        training = stage in (None, "fit")
        if training and self.source.kind == "folder" and rank_zero_only.rank == 0:
            self.check_folders()
        if training and self.source.kind in ("folder", "archives"):  # a store's images were decoded by prepare
            # On every rank, each deciding alone: an unreadable file refuses the run on all of them,
            # no rank left waiting for another; the cache makes all but the first run's check cheap.
            threads = self.num_workers or os.cpu_count() or 1
            splits, report = [self.splits["val"], self.splits["test"]], rank_zero_only.rank == 0
            readable.check_evaluation_splits(self.source, splits, self.resize, threads, report)
        self.augment = self.build_augment()

    def streams_training(self) -> bool:
        """data.stream, or where it is null, whether the store is a URL: there the map-style loader's
        shuffled reads would fetch shards all over the split (docs/object-storage.md)."""
        if self.stream is None:
            return is_url(self.store)
        if self.stream and self.source.kind != "store":
            raise ConfigError(
                f"data.stream: true streams a prepared store's shards, and {self.source.root} holds the "
                f"{self.source.kind} layout (set data.store to a store, or data.stream=null)"
            )
        return self.stream

    def check_folders(self) -> None:
        """The start-of-run dataset check (``check.quick``) of the splits this run reads, on the
        listing just made: its findings logged, its duplicates listed in the run folder."""
        self.checked = check.quick(self.source, list(dict.fromkeys(self.splits.values())))
        listed_in = None
        if self.checked.groups and self.trainer is not None:
            listed_in = RunDir(self.trainer.default_root_dir).duplicates
            self.checked.write_duplicates(listed_in)
        for line in self.checked.warnings(listed_in):
            log.warning("data check: %s", line)
        log.info(
            "data check of %s: %d images, %d files read for their digests, %.2f s",
            self.source.root,
            sum(sum(c.values()) for c in self.checked.counts.values()),
            self.checked.read,
            self.checked.seconds,
        )

    def data_summary(self) -> dict:
        """What summary.json records of the data check (nothing when the layout was not checked)."""
        return self.checked.summary_fields() if self.checked is not None else {}

    def warn_unreadable(self, split: str) -> None:
        """A store's val/test split lacks the images prepare could not read: say so, never silently."""
        missing = self.source.unreadable(split) if self.source.kind == "store" else 0
        if missing:
            log.warning(
                "store %s: %d '%s' images were unreadable at prepare time and are not in this split (listed in %s)",
                self.source.root,
                missing,
                split,
                self.source.manifest(),
            )

    def build_augment(self) -> BatchAugment:
        stats = None
        if self.mean_mode != "none" or (self.pca_lighting and self.pca_eigen == "dataset"):
            train = self.datasets["train"]
            if isinstance(self.source, RemoteStoreSource):  # no file to stat: the store's index and the shards read
                content = self.source.content_key(train.records.files)
            else:
                content = fingerprint.listing(train.records.files, self.source.root, mtimes=True)
            stats = load_or_compute(
                SkipUnreadable(train),
                train.classes,
                content,
                self.source.cache,
                self.splits["train"],
                self.resize,
                self.stats_images,
                self.num_workers,
                collate_fn=collate,
                unreadable=self.unreadable,
                # Streamed: a few whole shards, not images spread over every shard (stats.whole_shards).
                indices=whole_shards(train.records.file_of, self.stats_images) if self.streams_training() else None,
            )
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
        # A dataset of its own per loader: its batch memory (``batches``) is this loader's alone.
        records = self.datasets[stage].records
        if self.decode_on == "device":  # the store's images were all decoded once by prepare: none to skip
            dataset = EncodedRecords(records, self.resize)
        elif stage == "train":
            dataset = SkipUnreadable(ImageRecords(records, self.resize))
        else:
            dataset = ImageRecords(records, self.resize)
        trainer = self.trainer
        workers = dict(
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            # Workers ignore SIGINT/TERM/USR2: only the main process saves and requeues (alexnet.data.workers).
            worker_init_fn=worker_init(trainer.global_rank if trainer is not None else None),
        )
        if stage == "train" and shuffle and self.streamed:
            stream = ShardStream(
                dataset,
                batch_size=self.device_batch_size(),
                drop_last=True,
                rank=trainer.global_rank if trainer is not None else 0,
                world=trainer.world_size if trainer is not None else 1,
                seed=run_seed(),
                shuffle_buffer=self.shuffle_buffer,
            )
            loader = StreamLoader(stream, epoch=(lambda: trainer.current_epoch) if trainer is not None else None, **workers)
        else:
            loader = DataLoader(dataset, batch_size=self.device_batch_size(), shuffle=shuffle, drop_last=shuffle, **workers)
        self.loaders.add(loader)
        return loader

    def close_loaders(self) -> None:
        """Stops the worker processes of every loader this module made (persistent ones outlive their epoch)."""
        for loader in list(self.loaders):
            shutdown_workers(loader)
        self.loaders.clear()

    def repeat_train(self, images: int) -> None:
        """After ``setup``: the training split's records, over again until there are ``images`` or more.
        For a benchmark on a small set, so that one epoch covers all its timed steps."""
        train = self.datasets["train"]
        self.datasets["train"] = ImageRecords(Records.concat([train.records] * -(-images // len(train))), train.resize)

    def dataset(self, stage: str):
        """The records of a stage ("train", "val", "test"), after ``setup``."""
        return self.datasets[stage]

    def eval_loader(self, stage: str, crops: int, device: str | torch.device = "cpu"):
        """(x, y) batches of a stage as the network sees them at test time, on ``device``: the
        centre crop, (B, 3, c, c), or the ten crops, (B, 10, 3, c, c), minus the mean image.
        For evaluation outside a Trainer (eval.py); the Trainer's own loaders do this in
        ``on_after_batch_transfer``."""
        check_crops(crops, "crops")
        self.augment.to(device)
        for x, y in self.loader(stage, shuffle=False):
            yield self.augment.eval_batch(x.to(device), crops), y.to(device)

    def device_batch_size(self) -> int:
        """data.batch_size is the global batch (section 5: 128); each of the N DDP processes loads
        1/N of it, so 1 and N devices train the same recipe."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size ({self.batch_size}) is the global batch and must divide evenly over the {world} devices"
            )
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
            self.unreadable.add(f"epoch {self.trainer.current_epoch}", skipped[0] if skipped else [])
            return self.augment.train_batch(x), y
        self.unreadable.report()  # the epoch's training part is over
        # Validation steers the lr schedule on the centre crop; the test uses the paper's ten crops.
        testing = self.trainer is not None and self.trainer.testing
        return self.augment.eval_batch(x, self.test_crops if testing else 1), y

    def teardown(self, stage: str) -> None:
        self.unreadable.report()


class SyntheticDataModule(ImageFolderDataModule):
    """The built-in dataset (see ``alexnet.data.synthetic``), generated into ``root`` on first use."""

    def __init__(self, *, train_per_class: int, val_per_class: int, image_size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.spec = dict(train_per_class=train_per_class, val_per_class=val_per_class, image_size=image_size, seed=seed)

    @property
    def classes(self) -> list[str]:
        return [wnid for wnid, _ in synthetic.CLASSES]  # known before generation (prepare_data)

    def check_root(self) -> None:
        marker = self.root / synthetic.MARKER
        if not marker.exists():
            raise FileNotFoundError(f"data.root: the synthetic dataset was not generated in {self.root} (prepare_data makes it)")

    def prepare_data(self) -> None:
        synthetic.generate(self.root, **self.spec)
