"""debug=overfit's verdict: can this net learn a few batches by heart?

The standard first check of a new model or dataset: with the same few training batches every epoch,
no augmentation noise and no dropout, a net that can learn at all drives their loss to near zero.
The training loss is averaged over each epoch's batches (read once an epoch: a debugging run);
fitting stops once it is below ``pass_below``, and the run ends with one line:
``overfit: loss <first epoch> -> <last epoch>: passed`` or ``...: FAILED (...)``.
"""

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


def verdict(start: float, end: float, pass_below: float) -> str:
    passed = end < pass_below
    outcome = "passed" if passed else f"FAILED (the net did not learn these batches: not below {pass_below:g})"
    return f"overfit: loss {start:.4f} -> {end:.4f}: {outcome}"


class OverfitVerdict(Callback):
    def __init__(self, *, pass_below: float):
        if pass_below <= 0:
            raise ValueError(f"pass_below must be positive, got {pass_below}")
        self.pass_below = pass_below
        self.losses: list[float] = []  # each epoch's mean training loss
        self.line: str | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.sum, self.batches = torch.zeros((), device=pl_module.device), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self.sum += outputs["loss"].detach().float()  # on the device: no host sync per step
        self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.batches:
            return
        loss = float(trainer.strategy.reduce(self.sum / self.batches, reduce_op="mean"))
        self.losses.append(loss)
        if loss < self.pass_below:
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.losses:
            return
        self.line = verdict(self.losses[0], self.losses[-1], self.pass_below)
        if trainer.is_global_zero:
            (log.info if self.losses[-1] < self.pass_below else log.error)(self.line)
