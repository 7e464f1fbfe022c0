"""End-to-end training throughput: the real DataModule (loader workers, device-side augmentation)
feeding the real LightningModule under a real Trainer, and the 90-epoch wall time it implies."""

from alexnet.bench.model import Setup, paper_model, timed_fit
from alexnet.callbacks.fast_path import apply as apply_fast_path
from alexnet.training.config import build_data, paper_optim
from alexnet.training.module import LitAlexNet

IMAGENET_TRAIN_IMAGES = 1_281_167


def run(s: Setup, root: str, split: str = "train", num_workers: int = -1, decode_on: str = "loader") -> dict:
    """Training images/s reading ``root`` (a prepared store or a folder layout), ``split`` as the training split."""
    dm = build_data(
        "data=imagefolder",
        root=root,
        train_split=split,
        val_split=split,
        test_split=split,
        resize=s.resize,
        crop_size=s.crop,
        batch_size=s.batch,
        num_workers=num_workers,
        test_crops=1,
        decode_on=decode_on,
    )
    dm.setup("fit")
    # One epoch covers every timed step: no epoch boundary (a fresh shuffle, the workers'
    # pipeline refilling) falls inside the timing.
    dm.repeat_train(s.batch * (s.warmup + s.timed_steps + 1))
    module = LitAlexNet({**paper_model(s), "num_classes": dm.num_classes}, paper_optim())
    apply_fast_path(module, s.channels_last, s.compile)
    rate = timed_fit(s, module, dm)
    decoded = "decoded on the device" if decode_on == "device" else "decoded in the workers"
    return {
        "name": f"end to end from {root} ({dm.num_workers} workers, {decoded})",
        "images_per_s": rate,
        "hours_90_epochs": 90 * IMAGENET_TRAIN_IMAGES / rate / 3600,
    }
