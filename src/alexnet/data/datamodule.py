"""LightningDataModules: any ``train/<class>/``, ``val/<class>/`` folder (ImageNet, Imagenette,
the built-in synthetic set), with the paper's preprocessing and augmentation."""

import functools
import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from torchvision.datasets import DatasetFolder

from alexnet.data import synthetic
from alexnet.data.stats import load_or_compute
from alexnet.data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC, BatchAugment, MeanMode, load_image

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


def image_folder(root: Path, split: str, resize: int) -> DatasetFolder:
    """Class index = position of the folder name (the wnid) in sorted order, as in ILSVRC."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"data.root: no '{split}' folder in {Path(root).resolve()} (expected {split}/<class>/*.JPEG)")
    try:
        return DatasetFolder(str(folder), loader=functools.partial(load_image, resize=resize), extensions=IMAGE_EXTENSIONS)
    except FileNotFoundError as err:  # an empty class folder, or no class folders at all
        raise FileNotFoundError(f"data.root: {folder}: {err}") from err


class ImageFolderDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str,
        num_classes: int | None = None,
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
        self.root = Path(root)
        self.num_classes = num_classes
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.resize, self.crop_size, self.flip = resize, crop_size, flip
        self.mean_mode, self.pca_lighting, self.pca_eigen, self.pca_std = mean, pca_lighting, pca_eigen, pca_std
        self.stats_images, self.test_crops, self.batch_size = stats_images, test_crops, batch_size
        # -1: one worker per core, leaving one for the training process.
        self.num_workers = max(0, (os.cpu_count() or 1) - 1) if num_workers < 0 else num_workers
        self.datasets: dict[str, DatasetFolder] = {}
        self.augment: BatchAugment | None = None

    def check_root(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root: folder {self.root.resolve()} does not exist")

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.check_root()
        by_split: dict[str, DatasetFolder] = {}
        for name, split in self.splits.items():
            if split not in by_split:
                by_split[split] = image_folder(self.root, split, self.resize)
            self.datasets[name] = by_split[split]
        classes = self.datasets["train"].classes
        found = len(classes)
        for name in ("val", "test"):
            if self.datasets[name].classes != classes:
                raise ValueError(f"data.root: the '{self.splits[name]}' classes differ from the '{self.splits['train']}' classes in {self.root}")
        if self.num_classes is not None and self.num_classes != found:
            raise ValueError(f"data.num_classes is {self.num_classes} but {self.root / self.splits['train']} has {found} class folders")
        self.num_classes = found
        self.augment = self.build_augment()

    def build_augment(self) -> BatchAugment:
        stats = None
        if self.mean_mode != "none" or (self.pca_lighting and self.pca_eigen == "dataset"):
            stats = load_or_compute(self.datasets["train"], self.root, self.splits["train"], self.resize, self.stats_images, self.num_workers)
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
        """Human-readable names from ``labels.txt`` (``wnid name`` per line) where present, else the folder names."""
        wnids = self.datasets["train"].classes
        labels = self.root / "labels.txt"
        if labels.exists():
            names = dict(line.split(maxsplit=1) for line in labels.read_text().splitlines() if line.strip())
            return [names.get(w, w).strip() for w in wnids]
        return wnids

    def loader(self, stage: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[stage],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        self.augment.to(x.device)
        if self.trainer is not None and self.trainer.training:
            return self.augment.train_batch(x), y
        # Validation steers the lr schedule on the centre crop; the test uses the paper's ten crops.
        testing = self.trainer is not None and self.trainer.testing
        return self.augment.eval_batch(x, self.test_crops if testing else 1), y


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
