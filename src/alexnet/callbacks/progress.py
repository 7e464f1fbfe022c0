"""The rich progress bar, showing the training loss read every few steps instead of every step.

A metric logged with ``prog_bar=True`` on every step is turned into a Python float by Lightning
after every batch; on a GPU that ``.item()`` makes the host wait for the device (a host sync
in every step). So the module logs ``train/loss`` without ``prog_bar``, and this bar reads it
from the callback metrics (where it stays a tensor) every ``metrics_every_n_steps`` steps.
"""

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    def __init__(self, *, step_metrics: list[str], metrics_every_n_steps: int, **kwargs):
        super().__init__(**kwargs)
        if metrics_every_n_steps < 1:
            raise ValueError(f"metrics_every_n_steps must be >= 1, got {metrics_every_n_steps}")
        self.step_metrics, self.metrics_every_n_steps = tuple(step_metrics), metrics_every_n_steps
        self.shown: dict[str, float] = {}

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        if trainer.training and (not self.shown or trainer.global_step % self.metrics_every_n_steps == 0):
            logged = trainer.callback_metrics
            self.shown = {k: float(logged[k]) for k in self.step_metrics if k in logged}
        return {**super().get_metrics(trainer, pl_module), **self.shown}
