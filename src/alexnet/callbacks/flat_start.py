"""A guard for the flat start: the training loss stuck at ln(classes), the loss of uniform guesses.

At the paper's initialisation (biases 1 in conv2/4/5, fc6, fc7) the loss can sit at ln(classes)
for a long stretch: Caffe's bvlc_alexnet readme says bias 1 "gave flat loss" and starts from 0.1
instead, and Caffe's issue tracker has ImageNet runs stuck at 6.9 = ln(1000). This callback says
so once, with the keys that usually help, instead of letting a run burn its budget in silence;
``stop=true`` ends the run there, with last.ckpt saved.
"""

import logging
import math

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from alexnet.checkpointing.resolve import last_checkpoint_path
from alexnet.errors import RunStopped
from alexnet.exit_codes import ExitCode

log = logging.getLogger(__name__)


class FlatStartStop(RunStopped):
    """``callbacks.flat_start.stop=true``: the loss never left ln(classes); last.ckpt is kept."""


class FlatStart(Callback):
    """Warns when the training loss has averaged within ``margin`` (nats) of ln(num_classes) over
    each stretch of ``every_n_steps`` steps for ``patience_steps`` steps in a row. Like FiniteLoss,
    a device-side sum collects the losses and is read only every ``every_n_steps`` steps (a read is
    a host sync on a GPU).

    The mean of a stretch, not each step: a net that guesses uniformly still sees batch losses
    scatter around ln(classes) (in an Imagenette search at batch 32, flat trials' logged losses
    spread 2.25-2.46 around ln(10) = 2.30), so a per-step band either misses those runs or has to
    be so wide that it catches learning ones."""

    def __init__(self, *, patience_steps: int, margin: float, every_n_steps: int, stop: bool):
        if patience_steps < 1 or every_n_steps < 1:
            raise ValueError(f"patience_steps and every_n_steps must be >= 1, got {patience_steps}, {every_n_steps}")
        if margin <= 0:
            raise ValueError(f"margin must be positive, got {margin}")
        self.patience_steps, self.margin, self.every_n_steps, self.stop = patience_steps, margin, every_n_steps, stop
        self.loss_sum: torch.Tensor | None = None  # on the device: the losses since the last read
        self.losses = 0
        self.flat_steps = 0  # consecutive flat steps, counted in whole reads
        self.warned = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.warned and not self.stop:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        chance = math.log(pl_module.net.num_classes)
        self.loss_sum = loss.detach().float() if self.loss_sum is None else self.loss_sum + loss.detach().float()
        self.losses += 1
        if trainer.global_step % self.every_n_steps:
            return
        flat = abs(float(self.loss_sum) / self.losses - chance) < self.margin
        # Ranks see different batches: the run is flat only where every rank's loss was.
        flat_now = trainer.strategy.reduce_boolean_decision(flat, all=True)
        self.loss_sum, self.losses = None, 0
        self.flat_steps = self.flat_steps + self.every_n_steps if flat_now else 0
        if self.flat_steps >= self.patience_steps and not self.warned:
            self.warned = True
            self.report(trainer, chance)
            if self.stop:
                path = last_checkpoint_path(trainer)
                trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes
                raise FlatStartStop(
                    f"{self.message(trainer, chance)}; stopped (callbacks.flat_start.stop=true), saved {path}",
                    "flat_start",
                    ExitCode.FLAT_START,
                    str(path),
                )

    def message(self, trainer: L.Trainer, chance: float) -> str:
        return (
            f"flat start: the training loss has averaged within {self.margin} of ln({round(math.exp(chance))}) = {chance:.3f} "
            f"(uniform guesses) for {self.flat_steps} steps, up to step {trainer.global_step}. It may still leave it; "
            "what usually helps: a smaller or larger optim.lr, or model.init=caffe (biases 0.1, bvlc_alexnet's start)"
        )

    @rank_zero_only
    def report(self, trainer: L.Trainer, chance: float) -> None:
        log.warning(self.message(trainer, chance))
        for logger in trainer.loggers:
            logger.log_metrics({"train/flat_start_steps": float(self.flat_steps)}, step=trainer.global_step)
            summary = getattr(getattr(logger, "experiment", None), "summary", None)  # a W&B run
            if summary is not None and hasattr(summary, "update"):
                summary.update({"warning/flat_start": self.message(trainer, chance)})
