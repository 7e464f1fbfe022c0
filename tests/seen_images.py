"""A callback for tests that read which images a run trained on, from the batches themselves: with
the crop as large as the image and no reflection, colour noise or mean, a training batch's pixels
are the stored images' own, so a digest of each names its image without any hook in the loader."""

import hashlib
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


def digest(image: torch.Tensor) -> str:
    """An image's (3, R, R) pixels, 0..255 as uint8 or float, as a short hex digest."""
    return hashlib.sha1(image.round().to(torch.uint8).contiguous().numpy().tobytes()).hexdigest()[:16]


class SeenImages(Callback):
    """Appends "epoch digest" per training image this rank gets to <run>/seen_rank<R>.txt."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        lines = [f"{trainer.current_epoch} {digest(x.float().cpu())}\n" for x in batch[0]]
        with open(Path(trainer.default_root_dir) / f"seen_rank{trainer.global_rank}.txt", "a") as f:
            f.writelines(lines)
