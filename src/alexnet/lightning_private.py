"""Every private Lightning name this project relies on, in this one module, each with its reason.

Exact resume and DDP under Hydra need a few of Lightning's internals. They are reached only
through the classes and functions below, pyproject.toml bounds ``lightning`` to the releases they
were tested with, and ``missing_names()`` (run by tests/test_lightning_compat.py) names any that a
newer release renamed, so an upgrade fails in one test with the name, not in a resumed run.
"""

from collections.abc import Callable

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loops.fit_loop import _FitLoop
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop
from lightning.pytorch.strategies.launchers import subprocess_script
from lightning.pytorch.utilities import combined_loader

# (owner, name, why): checked by missing_names().
USED = [
    (ModelCheckpoint, "_save_checkpoint", "the one write path of every checkpoint: refuse to save NaN weights"),
    (ModelCheckpoint, "_save_last_checkpoint", "write last.ckpt after every epoch, not only when top-k improves"),
    (ModelCheckpoint, "_monitor_candidates", "the metrics _save_last_checkpoint formats the file name with"),
    (ModelCheckpoint, "_should_save_on_train_epoch_end", "whether the epoch ends at train-epoch end or after validation"),
    (ModelCheckpoint, "_should_skip_saving_checkpoint", "no save while sanity checking, under fast_dev_run, or twice a step"),
    (_FitLoop, "_data_fetcher", "remake the first epoch's iterator after resuming, where the uninterrupted run makes it"),
    (_TrainingEpochLoop, "_num_ready_batches_reached", "a mid-epoch resume finished its epoch: take the owed plateau step"),
    (ExperimentWriter, "_check_log_dir_exists", "Lightning's CSV writer deletes metrics.csv of a resumed run here"),
    (CSVLogger, "_experiment", "build the resuming writer lazily, on rank zero only"),
    (subprocess_script, "_hydra_subprocess_cmd", "the command line of DDP ranks > 0 under Hydra: this job's overrides"),
    (combined_loader, "_shutdown_workers_and_reset_iterator", "stop a loader's persistent workers when its run ends"),
]


def missing_names() -> list[str]:
    """The private names above that the installed Lightning no longer has."""
    missing = []
    for owner, name, why in USED:
        if isinstance(owner, type):  # a method or class attribute, or an instance attribute its __init__ sets
            present = any(
                name in vars(k) or name in getattr(vars(k).get("__init__"), "__code__", compile("", "", "exec")).co_names
                for k in owner.__mro__
            )
        else:
            present = hasattr(owner, name)
        if not present:
            missing.append(f"{getattr(owner, '__qualname__', owner.__name__)}.{name} ({why})")
    return missing


class CheckpointHooks(ModelCheckpoint):
    """ModelCheckpoint with public names for the private steps a subclass needs."""

    def before_save(self, trainer: L.Trainer, filepath: str) -> None:
        """Called before every checkpoint write (top-k and last.ckpt alike)."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        self.before_save(trainer, filepath)
        super()._save_checkpoint(trainer, filepath)

    def saves_on_train_epoch_end(self, trainer: L.Trainer) -> bool:
        return self._should_save_on_train_epoch_end(trainer)

    def save_last_now(self, trainer: L.Trainer) -> None:
        # Skipped when this step was just saved, while sanity checking, under fast_dev_run.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class CSVWriterHooks(ExperimentWriter):
    """Lightning's CSV experiment writer, with a public hook where it finds an existing log folder."""

    def on_existing_log_dir(self) -> None:
        super()._check_log_dir_exists()

    def _check_log_dir_exists(self) -> None:
        self.on_existing_log_dir()


class CSVLoggerHooks(CSVLogger):
    """Lightning's CSVLogger whose writer is built by ``make_writer`` (on rank zero, on first use)."""

    def make_writer(self) -> ExperimentWriter:
        raise NotImplementedError

    @property
    def experiment(self) -> ExperimentWriter:
        from lightning.pytorch.utilities.rank_zero import rank_zero_only

        if self._experiment is None and rank_zero_only.rank == 0:  # the other ranks get Lightning's dummy
            self._experiment = self.make_writer()
        return super().experiment


def train_data_fetcher(trainer: L.Trainer):
    """The fit loop's data fetcher (None before fitting made one)."""
    return getattr(trainer.fit_loop, "_data_fetcher", None)


def epoch_batches_done(trainer: L.Trainer) -> bool:
    """Whether the current training epoch has run all its batches."""
    return trainer.fit_loop.epoch_loop._num_ready_batches_reached()


def set_ddp_child_command(command: Callable[[int], tuple[list[str], str]]) -> None:
    """Lightning's launcher looks this function up at call time; replacing it is the one change needed."""
    subprocess_script._hydra_subprocess_cmd = command


def shutdown_workers(loader) -> None:
    """Stops a DataLoader's worker processes (a persistent loader keeps them between epochs), as
    Lightning does when it tears down the loop that reads the loader."""
    combined_loader._shutdown_workers_and_reset_iterator(loader)
