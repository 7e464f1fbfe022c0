"""End-to-end training throughput: the real DataModule (loader workers, device-side augmentation)
feeding the real LightningModule under a real Trainer, and the 90-epoch wall time it implies."""

from alexnet.bench.model import Setup, timed_fit
from alexnet.data import ImageFolderDataModule
from alexnet.module import LitAlexNet
from alexnet.speed import apply as apply_fast_path

IMAGENET_TRAIN_IMAGES = 1_281_167


def run(s: Setup, root: str, split: str = "train", num_workers: int = -1) -> dict:
    """Training images/s reading ``root`` (a prepared store or a folder layout), ``split`` as the training split."""
    dm = ImageFolderDataModule(
        root=root, train_split=split, val_split=split, test_split=split, resize=s.resize, crop_size=s.crop,
        batch_size=s.batch, num_workers=num_workers, test_crops=1,
    )
    dm.setup("fit")
    module = LitAlexNet(dict(num_classes=dm.num_classes, crop_size=s.crop))
    apply_fast_path(module, s.channels_last, s.compile)
    rate = timed_fit(s, module, dm)
    return {
        "name": f"end to end from {root} ({dm.num_workers} workers)",
        "images_per_s": rate,
        "hours_90_epochs": 90 * IMAGENET_TRAIN_IMAGES / rate / 3600,
    }
