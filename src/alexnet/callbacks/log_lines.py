"""A long run you can follow from its log: a line at the start, one per epoch, and step lines when
nobody watches the progress bar.

A run whose output goes to a file (sbatch, nohup, ``python train.py > log``) shows no progress bar;
like cuda-convnet's per-batch line, Caffe's ``display`` and torchvision's ``MetricLogger``, it
prints lines instead. They go through the ``logging`` module, so Hydra's handlers put each on the
console and in the run folder's ``train.log``, once (alexnet.loggers.console), from rank zero.

No extra host syncs: the epoch line reads the metrics Lightning has already reduced for its
loggers, and a step line reads the training loss only on the steps where the progress bar reads it
(``read_every_n_steps``, conf/train.yaml's ``sync_every_n_steps``).
"""

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import Callback

from alexnet.callbacks.pace import Pace, duration, images_per_second

log = logging.getLogger(__name__)


def percent(value) -> str:
    return f"{100 * float(value):.2f}%"


class LogLines(Callback):
    """``every_n_steps``/``every_n_seconds``: a step line at the first loss read after that many
    steps or seconds since the last line; only when stdout is not a terminal (where the rich bar
    shows the same)."""

    def __init__(self, *, every_n_steps: int, every_n_seconds: float, read_every_n_steps: int):
        for name, value in (("every_n_steps", every_n_steps), ("read_every_n_steps", read_every_n_steps)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if every_n_seconds <= 0:
            raise ValueError(f"every_n_seconds must be positive, got {every_n_seconds}")
        self.every_n_steps, self.every_n_seconds = every_n_steps, every_n_seconds
        self.read_every_n_steps = read_every_n_steps
        self.pace = Pace()
        self.step_lines = False
        self.validated = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.pace.start(trainer.global_step, float(trainer.estimated_stepping_batches))
        self.last_line_step, self.last_line_time = trainer.global_step, time.monotonic()
        # A stop before the first batch (a signal in the sanity check) still ends the epoch: its line says 0 images.
        self.epoch_start = self.train_end = self.last_line_time
        self.epoch_images = 0
        self.step_lines = not sys.stdout.isatty()
        if not trainer.is_global_zero:
            return
        where = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, step {trainer.global_step}"
        if trainer.ckpt_path:
            log.info(f"resumed from {trainer.ckpt_path}: continues at {where}")
        else:
            log.info(f"training from {where}: {trainer.num_training_batches} steps an epoch")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = self.train_end = time.monotonic()
        self.epoch_images = 0
        self.validated = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        images = len(batch[0]) * trainer.world_size  # a shape: known on the host
        self.pace.add(images)
        self.epoch_images += images
        self.train_end = time.monotonic()
        step = trainer.global_step
        if not (self.step_lines and trainer.is_global_zero) or step % self.read_every_n_steps:
            return
        if step - self.last_line_step < self.every_n_steps and self.train_end - self.last_line_time < self.every_n_seconds:
            return
        self.last_line_step, self.last_line_time = step, self.train_end
        loss = trainer.callback_metrics.get("train/loss")
        shown = f"{float(loss):.4f}" if loss is not None else "?"
        log.info(
            f"step {step}/{self.pace.total:.0f} (epoch {trainer.current_epoch + 1}/{trainer.max_epochs}): "
            f"loss {shown} | {self.pace.rate():.0f} img/s | ETA {duration(self.pace.eta(step))}"
        )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validated = self.validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics  # reduced already, for the loggers
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}:"]
        parts.append(self.stage(metrics, "train"))
        if self.validated:  # else the val metrics are an earlier epoch's
            parts.append("| " + self.stage(metrics, "val"))
        lr = f"{trainer.optimizers[0].param_groups[0]['lr']:.3g}" if trainer.optimizers else "?"  # the weights' group
        speed = images_per_second(self.epoch_images, self.train_end - self.epoch_start)
        wall = time.monotonic() - self.epoch_start
        parts.append(
            f"| lr {lr} | {speed:.0f} img/s | epoch {duration(wall)} | ETA {duration(self.pace.eta(trainer.global_step))}"
        )
        log.info(" ".join(parts))

    @staticmethod
    def stage(metrics: dict, stage: str) -> str:
        values = {name: metrics.get(f"{stage}/{name}") for name in ("loss", "top1_err", "top5_err")}
        loss = f"{float(values['loss']):.4f}" if values["loss"] is not None else "?"
        errors = [f"{name[:4]} {percent(v) if v is not None else '?'}" for name, v in values.items() if name != "loss"]
        return f"{stage} loss {loss} " + " ".join(errors)
