"""Exact resume, wired in conf/callbacks/default.yaml: last.ckpt after every epoch, and in it every
random stream and the lr schedule's pending step, so that a run stopped and resumed draws the
same shuffles, crops, flips, colour noise and dropout masks, with the same learning rates, as
one that never stopped; and the run's fitting time and latest metrics, for a summary that covers
every session."""

import random
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from alexnet.checkpointing.checks import IDENTITY, check_classes, check_weights_finite, class_identity
from alexnet.lightning_private import CheckpointHooks, epoch_batches_done, train_data_fetcher
from alexnet.paths import RunDir


class Checkpoint(CheckpointHooks):
    """ModelCheckpoint whose last.ckpt is the run's latest state after every epoch.

    Lightning (2.2 on) rewrites last.ckpt only when it writes a top-k checkpoint, i.e. when the
    monitored metric improved: resuming after a plateau would silently go back several epochs.
    ``run_dir``: the run folder, whose checkpoints/ folder (``alexnet.paths.RunDir``) is the
    ``dirpath`` unless one is given; the other arguments are ModelCheckpoint's.
    """

    def __init__(self, *, run_dir: str, **kwargs) -> None:
        kwargs.setdefault("dirpath", str(RunDir(run_dir).checkpoints))
        super().__init__(**kwargs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.saves_on_train_epoch_end(trainer):
            self.save_last_now(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self.saves_on_train_epoch_end(trainer):
            self.save_last_now(trainer)

    def before_save(self, trainer: L.Trainer, filepath: str) -> None:
        check_weights_finite(trainer, filepath)  # a diverged net never replaces the last good checkpoint

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(moved_here(state_dict, self.dirpath))


def moved_here(state: dict, dirpath: str | None) -> dict:
    """ModelCheckpoint's state, resumed in a copy of the run folder it was saved in: the files it
    names (best, last, the top k; Lightning keeps them absolute) are this folder's, when this
    folder holds every one of them. Lightning would keep only best_model_path, the original
    folder's file, and forget the best score: test_checkpoint=best would score the original's
    file, or whichever epoch came first after the resume."""
    old = state.get("dirpath")
    if not (old and dirpath) or Path(old) == Path(dirpath):
        return state
    names = [state.get(key) for key in ("best_model_path", "last_model_path", "kth_best_model_path")]
    names = [name for name in (*names, *state.get("best_k_models", {})) if name]

    def here(path: str) -> str:
        return str(Path(dirpath) / Path(path).relative_to(old))

    if not names or not all(Path(n).is_relative_to(old) and Path(here(n)).is_file() for n in names):
        return state  # another folder's checkpoint (a run started from it): Lightning's own way
    moved = {"dirpath": dirpath, "best_k_models": {here(k): v for k, v in state.get("best_k_models", {}).items()}}
    for key in ("best_model_path", "last_model_path", "kth_best_model_path"):
        if state.get(key):
            moved[key] = here(state[key])
    return {**state, **moved}


class ExactResume(Callback):
    """Restores what Lightning's resume leaves out, so a resumed run is the uninterrupted one.

    1. The global RNG states (torch CPU and CUDA, numpy, python). Every random draw of a run comes
       from them: the loader's shuffle (RandomSampler seeds itself from the torch RNG as each
       epoch's iterator starts), BatchAugment's crops, reflections and PCA noise (the torch RNG of
       the batch's device) and dropout. They are restored while the checkpoint is loaded, before
       the first training iterator is made. Under DDP every rank seeds and draws alike, so rank 0's
       states serve them all (and DistributedSampler shuffles by seed and epoch).
    2. The epoch-end step of ReduceLROnPlateau. last.ckpt is written at the end of validation,
       before that step; on resume Lightning skips it (the metric it needs is not in the
       checkpoint), so the schedule would lag one epoch behind. The metric is saved here and the
       step replayed when training restarts. After a mid-epoch checkpoint (SIGTERM) Lightning
       skips the step of the epoch it finishes; it is taken here at that epoch's end.
    """

    def __init__(self) -> None:
        self.trainer: L.Trainer | None = None
        self.pending: dict | None = None
        self.rng: dict | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # Plain lists and tensors: checkpoints load with torch.load(weights_only=True).
        states = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return {"rng": states, "plateau": self.plateau_metrics()}

    def plateau_metrics(self) -> dict | None:
        """The epoch and monitored values of an epoch whose scheduler step has not happened yet."""
        trainer = self.trainer
        if trainer is None:
            return None
        progress = trainer.fit_loop.epoch_progress.current
        if progress.completed >= progress.ready:
            return None
        monitors = {c.monitor for c in trainer.lr_scheduler_configs if c.reduce_on_plateau and c.monitor}
        values = {m: float(trainer.callback_metrics[m]) for m in monitors if m in trainer.callback_metrics}
        return {"epoch": trainer.current_epoch, "metrics": values}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rng = state_dict["rng"]
        set_rng_states(self.rng)
        self.pending = state_dict.get("plateau")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The first epoch after resuming at an epoch boundary. Lightning made its iterator while
        # loading, which drew from the RNG where the uninterrupted run did not: a persistent worker
        # pool is made once, so its seed is drawn once per run, not once per resume; and a
        # DistributedSampler is iterated before its epoch is set. Re-seat the RNG and remake the
        # iterator here, where the uninterrupted run makes it.
        rng, self.rng = self.rng, None
        fetcher = train_data_fetcher(trainer)
        if rng is not None and fetcher is not None:
            set_rng_states(rng)
            iter(fetcher)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Saved after the epoch's validation (the normal last.ckpt): training restarts at the next
        # epoch, and the owed step is taken now with the saved metric, as Lightning would have.
        pending, self.pending = self.pending, None
        if pending and trainer.current_epoch > pending["epoch"] and pending["metrics"]:
            trainer.callback_metrics.update({k: torch.tensor(v) for k, v in pending["metrics"].items()})
            trainer.fit_loop.epoch_loop.update_lr_schedulers("epoch", update_plateau_schedulers=True)
        if pending and trainer.current_epoch == pending["epoch"]:
            self.rng = None  # resumed mid-epoch: Lightning goes on with the iterator it made

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Resumed mid-epoch (SIGTERM): Lightning skips this epoch's step too while its fit loop is
        # still "restarting"; the metric is at hand now, so take the step Lightning would have.
        loop = trainer.fit_loop
        if loop.restarting and epoch_batches_done(trainer):
            loop.epoch_loop.update_lr_schedulers("epoch", update_plateau_schedulers=True)


def set_rng_states(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    kind, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_as_tuples(rng["python"]))
    cuda = rng.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _as_tuples(value):
    # random.setstate needs tuples; a checkpoint may hand back lists.
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class FitRecord(Callback):
    """What a run's summary needs from the sessions before this one, kept in every checkpoint: the
    seconds spent fitting so far and the latest train/ and val/ metrics.

    A run resumed after fitting had finished (stopped while testing) trains nothing: without this
    its summary would give only this session's fit time and no validation error at all.
    """

    def __init__(self) -> None:
        self.trainer: L.Trainer | None = None
        self.seconds_before = 0.0  # fitting time of the sessions up to the checkpoint resumed from
        self.metrics_before: dict[str, float] = {}
        self.started: float | None = None
        self.ended: float | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.ended = time.monotonic(), None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ended = time.monotonic()

    def fit_seconds(self) -> float:
        """The whole run's fitting time: the earlier sessions' and this one's, so far."""
        if self.started is None:
            return self.seconds_before
        return self.seconds_before + ((self.ended or time.monotonic()) - self.started)

    def metrics(self) -> dict[str, float]:
        """The latest train/ and val/ metrics: this session's, else those the checkpoint carried."""
        found = self.trainer.callback_metrics if self.trainer is not None else {}
        now = {k: float(v) for k, v in found.items() if k.startswith(("train/", "val/"))}
        return {**self.metrics_before, **now}

    def state_dict(self) -> dict:
        return {"fit_seconds": self.fit_seconds(), "metrics": self.metrics()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.seconds_before = float(state_dict["fit_seconds"])
        self.metrics_before = dict(state_dict["metrics"])


class ClassIdentity(Callback):
    """Every checkpoint carries what its outputs mean: the training split's classes in label order,
    their names and a fingerprint of the training files (``checkpointing.checks.class_identity``).

    The checkpoints this run starts from are checked once the data is set up, before any step: a
    resume (``ckpt_path``) onto other classes stops, naming the differences; a fine-tuning
    (``init_from``) onto other classes is the design (fc8 is new), so it is warned about and
    recorded in ``report`` (summary.json's ``init_from``).
    """

    def __init__(self) -> None:
        self.identity: dict | None = None
        self.checks: list[tuple[str, str, dict, bool, dict | None]] = []

    def expect(self, key: str, path: str, checkpoint: dict, strict: bool, report: dict | None = None) -> None:
        self.checks.append((key, path, {IDENTITY: checkpoint.get(IDENTITY)}, strict, report))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.identity is None and trainer.datamodule is not None:
            self.identity = class_identity(trainer.datamodule)
        checks, self.checks = self.checks, []
        for key, path, checkpoint, strict, report in checks:
            found = check_classes(key, path, checkpoint, self.identity, strict)
            if report is not None and found:
                report.update(found)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self.identity is not None:
            checkpoint[IDENTITY] = dict(self.identity)
