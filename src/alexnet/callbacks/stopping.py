"""Stopping a run on purpose, wired in conf/callbacks/default.yaml: SIGTERM (pre-emption, scancel),
SIGINT (Ctrl+C) or submitit's requeue signal finish the batch, save last.ckpt and stop with a
message naming it; a NaN/inf loss stops the run within a few steps, and no checkpoint of a
diverged net is ever written over the last good one."""

import logging
import os
import signal
import threading

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from alexnet.checkpointing.checks import check_weights_finite
from alexnet.checkpointing.resolve import last_checkpoint_path, latest_good_checkpoint
from alexnet.errors import Diverged, RunStopped
from alexnet.exit_codes import ExitCode, stopped_by
from alexnet.folder_reuse import OVERWRITE
from alexnet.torchrun import launcher

log = logging.getLogger(__name__)


class GracefulStop(Callback):
    """On SIGTERM, SIGINT (or submitit's requeue signal) while fitting: finish the batch, save
    last.ckpt, stop with a message naming it. While testing after fitting: finish the batch and
    stop, naming the checkpoint tested (the run's checkpoints are complete; a resume tests again).

    The handler only notes the signal; at the end of a training batch (every batch, or every
    ``every_n_steps`` for GPU ranks) the ranks decide together (one all-reduce under DDP) and all
    stop at that same batch boundary, so the checkpoint is taken
    between two optimizer steps and no rank is left waiting in a collective. (Lightning's own
    SIGTERM handling checks a per-rank flag and broadcasts from inside the signal handler, which
    can leave DDP ranks in different collectives; it is replaced here while fitting.) Under
    submitit (``hydra/launcher=slurm`` or ``local``) SIGUSR2 means "time limit or pre-emption:
    requeue"; submitit's handler would requeue and exit on the spot, so it is called only once
    last.ckpt is saved (``RunStopped.then``). ``kill -9`` cannot be caught: checkpoint writes are
    atomic (``alexnet.checkpointing.io.AtomicCheckpointIO``), so the previous checkpoint survives it.
    """

    def __init__(self, *, every_n_steps: int) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.signal: int | None = None
        self.checkpoint: str | None = None
        self._requeue = None  # submitit's handler, called after saving
        self._requeue_signal: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.listen("stopping after this batch, then saving last.ckpt")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The test after fitting: a stop there is recorded and resumable too.
        self.listen("stopping the test after this batch (fitting had finished: the checkpoints are complete)")

    def listen(self, then: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame):
            if self.signal is None:  # a second Ctrl+C changes nothing: the stop is already on its way
                self.signal = signum
                log.info(f"{signal.Signals(signum).name}: {then} (kill -9 stops at once; the checkpoints on disk stay whole)")

        usr = submitit_requeue_signal()
        if usr is not None:
            self._requeue, self._requeue_signal = signal.signal(usr, on_signal), usr
        # Lightning restores the handlers it found when fitting (or testing) ends.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self.stop_if_signalled(trainer, pl_module, trainer.global_step)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.stop_if_signalled(trainer, pl_module, batch_idx)

    def stop_if_signalled(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        # One process decides alone and for free, and so do CPU ranks (gloo, no device to wait
        # for). GPU ranks decide together every `every_n_steps`, all at the same step, so the
        # all-reduce and the host sync it brings stay out of the other steps.
        if trainer.world_size > 1 and pl_module.device.type != "cpu" and step % self.every_n_steps:
            return
        if trainer.strategy.reduce_boolean_decision(self.signal is not None, all=False):
            raise SIGTERMException()  # Lightning's own "stop now" exception: every callback's on_exception sees it

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.signal = self.signal or signal.SIGTERM
        if trainer.state.fn != "fit":
            return  # while testing the module holds the best weights, not the run's latest state
        path = last_checkpoint_path(trainer)
        check_weights_finite(trainer, str(path))
        trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes
        self.checkpoint = str(path)

    def stopped(self, trainer: L.Trainer) -> RunStopped:
        signum = self.signal or signal.SIGTERM
        if trainer.state.fn == "test":
            stop = stopped_while_testing(trainer, signum)
        else:
            name = signal.Signals(signum).name
            where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
            if self.checkpoint:
                message = f"stopped by {name} at {where}: saved {self.checkpoint}\n{resume_hint(trainer)}"
            else:
                message = f"stopped by {name} at {where} ({trainer.state.fn}): no checkpoint written"
            stop = RunStopped(message, "interrupted", stopped_by(signum), self.checkpoint)
        if self._requeue is not None and self.signal == self._requeue_signal:
            requeue = self._requeue
            stop.then = lambda: requeue(signum, None)  # submitit requeues the job (rank 0) and exits
        return stop


def stopped_while_testing(trainer: L.Trainer, signum: int) -> RunStopped:
    """A stop during the test after fitting: the checkpoints are complete, so the same command
    (ckpt_path=last) trains nothing more and runs the test again. ``checkpoint``: the one tested."""
    name = signal.Signals(signum).name
    tested = trainer.ckpt_path  # None: the weights in memory when fitting ended (no checkpoint callback)
    what = tested or "the weights fitting ended with (not saved: no checkpoint callback)"
    where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
    message = f"stopped by {name} while testing {what}, after fitting had finished ({where}): no test result"
    if tested:
        message += f"\n{resume_hint(trainer)}"
    return RunStopped(message, "interrupted", stopped_by(signum), tested)


def submitit_requeue_signal() -> int | None:
    """The signal whose handler is submitit's requeue, when this process is a submitit job."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    signum = getattr(signal, f"SIG{name}", None)
    handler = signal.getsignal(signum) if signum is not None else None
    owner = getattr(handler, "__self__", None)
    return signum if owner is not None and type(owner).__module__.startswith("submitit") else None


def resume_hint(trainer: L.Trainer) -> str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return "resume: trainer.fit(..., ckpt_path='last')"
    hydra = HydraConfig.get()
    # Without overwrite=true: continuing the run is the opposite of removing its record.
    replaced = ("ckpt_path=", "hydra.run.dir=", f"{OVERWRITE}=")
    args = " ".join(a for a in hydra.overrides.task if not a.lstrip("+").startswith(replaced))
    # Under torchrun, torchrun again: its own options, a new rendezvous, this run's folder.
    return f"resume with: {launcher()} train.py {args} hydra.run.dir={hydra.runtime.output_dir} ckpt_path=last".replace("  ", " ")


class FiniteLoss(Callback):
    """Stops the run when the training loss is NaN or inf; the checkpoints on disk stay the last good ones.

    Reading the loss every step would make the host wait for the device every step (a GPU
    host sync), so a device-side flag collects every step's verdict and is read every
    ``every_n_steps`` steps and before validation. The weights in memory may have taken the bad
    steps by then; they are never saved (the checkpoint callback refuses NaN weights). Under DDP all
    ranks decide together at the same step (a NaN on one rank would otherwise leave the others
    waiting in the gradient all-reduce).
    """

    def __init__(self, *, every_n_steps: int) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.bad: torch.Tensor | None = None  # on the device: any non-finite loss since the last check
        self.first_bad: torch.Tensor | None = None  # the first non-finite loss, for the message
        self.since = 0  # the global step of the last check

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        loss = loss.detach()
        bad = ~torch.isfinite(loss).all()
        if self.bad is None:
            self.bad, self.first_bad = bad, loss.clone()
        else:
            self.first_bad = torch.where(self.bad, self.first_bad, loss)
            self.bad = self.bad | bad
        if (trainer.global_step + 1) % self.every_n_steps == 0:
            self.flush(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.flush(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.flush(trainer)

    def flush(self, trainer: L.Trainer) -> None:
        if self.bad is None:
            return
        bad, loss, since = self.bad, self.first_bad, self.since
        self.bad = self.first_bad = None
        self.since = trainer.global_step
        if not trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            return
        good = latest_good_checkpoint(trainer)
        kept = f"the last good checkpoint is {good}" if good else "no checkpoint had been written yet"
        raise Diverged(
            f"training loss is {loss.item()} at epoch {trainer.current_epoch}, between steps {since} and "
            f"{trainer.global_step}: stopped; the weights in memory are not saved and {kept}. "
            "Lower optim.lr or check the data.",
            "diverged",
            ExitCode.DIVERGED,
            good,
        )


class EnoughTrainingData(Callback):
    """Stops before any work when the training split cannot fill one batch.

    Every training batch is a full one (section 5: batches of 128; the loader drops an epoch's
    last partial batch, so every step sees the same batch size and the same recipe), so a
    training split smaller than ``data.batch_size`` would train zero steps. Lightning then only
    says "No training batches" and returns as if it had finished.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if stage != "fit" or datamodule is None:
            return
        loader = datamodule.train_dataloader()
        if loader.batch_size is None:  # a custom batch sampler: its length is the number of batches
            steps, images, batch = len(loader), len(loader.dataset), None
        else:
            images, batch = len(loader.dataset), loader.batch_size
            per_rank = -(-images // trainer.world_size)  # DistributedSampler pads every rank to this many
            steps = per_rank // batch if loader.drop_last else -(-per_rank // batch)
        if steps:
            return
        from alexnet.errors import ConfigError

        split = getattr(datamodule, "splits", {}).get("train", "train")
        where = f"the '{split}' split of {datamodule.root}" if hasattr(datamodule, "root") else "the training split"
        global_batch = getattr(datamodule, "batch_size", None) or batch
        raise ConfigError(
            f"data.batch_size: {global_batch} is more than the {images} training images in {where}: every training "
            "batch is a full one (the paper's batches of 128; an epoch's last partial batch is dropped), so not one "
            "step would be trained. Lower data.batch_size or add training images"
        )
