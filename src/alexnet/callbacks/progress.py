"""The rich progress bar, showing the training loss read every few steps instead of every step,
the images per second and the whole run's ETA.

A metric logged with ``prog_bar=True`` on every step is turned into a Python float by Lightning
after every batch; on a GPU that ``.item()`` makes the host wait for the device (a host sync
in every step). So the module logs ``train/loss`` without ``prog_bar``, and this bar reads it
from the callback metrics (where it stays a tensor) every ``metrics_every_n_steps`` steps, and
updates the speed and ETA (host clocks, alexnet.callbacks.pace) at the same steps.
"""

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from alexnet.callbacks.pace import Pace, duration


class ProgressBar(RichProgressBar):
    def __init__(self, *, step_metrics: list[str], metrics_every_n_steps: int, **kwargs):
        super().__init__(**kwargs)
        if metrics_every_n_steps < 1:
            raise ValueError(f"metrics_every_n_steps must be >= 1, got {metrics_every_n_steps}")
        self.step_metrics, self.metrics_every_n_steps = tuple(step_metrics), metrics_every_n_steps
        self.shown: dict[str, float | str] = {}
        self.pace = Pace()
        self.shown_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.pace.start(trainer.global_step, float(trainer.estimated_stepping_batches))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self.pace.add(len(batch[0]) * trainer.world_size)  # before the bar redraws with it
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        step = trainer.global_step
        due = not self.shown or (step % self.metrics_every_n_steps == 0 and step != self.shown_step)
        if trainer.training and due:  # once a step: the bar may redraw more often
            self.shown_step = step
            logged = trainer.callback_metrics
            self.shown = {k: float(logged[k]) for k in self.step_metrics if k in logged}
            if step > self.pace.first_step:
                self.shown.update({"img/s": f"{self.pace.rate():.0f}", "ETA": duration(self.pace.eta(step))})
        return {**super().get_metrics(trainer, pl_module), **self.shown}
