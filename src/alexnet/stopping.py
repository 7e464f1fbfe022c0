"""Stopping a run on purpose, wired in conf/callbacks/default.yaml: SIGTERM (pre-emption, scancel),
SIGINT (Ctrl+C) or submitit's requeue signal finish the batch, save last.ckpt and stop with a
message naming it; a NaN/inf loss stops the run before it reaches the weights, and no checkpoint
of a diverged net is ever written over the last good one."""

import logging
import os
import signal
import threading

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from alexnet.checkpoint import last_checkpoint_path, latest_good_checkpoint

log = logging.getLogger(__name__)


class RunStopped(Exception):
    """The run stopped early on purpose; the message says why and where its checkpoint is.
    ``then``: what to do after reporting it (submitit's requeue)."""

    def __init__(self, message: str, status: str, exit_code: int, checkpoint: str | None):
        super().__init__(message)
        self.status, self.exit_code, self.checkpoint = status, exit_code, checkpoint
        self.then = None


class GracefulStop(Callback):
    """On SIGTERM, SIGINT (or submitit's requeue signal) while fitting: finish the batch, save
    last.ckpt, stop with a message naming it.

    The handler only notes the signal; at the end of each training batch the ranks decide together
    (one all-reduce under DDP) and all stop at that same batch boundary, so the checkpoint is taken
    between two optimizer steps and no rank is left waiting in a collective. (Lightning's own
    SIGTERM handling checks a per-rank flag and broadcasts from inside the signal handler, which
    can leave DDP ranks in different collectives; it is replaced here while fitting.) Under
    submitit (``hydra/launcher=slurm`` or ``local``) SIGUSR2 means "time limit or pre-emption:
    requeue"; submitit's handler would requeue and exit on the spot, so it is called only once
    last.ckpt is saved (``RunStopped.then``). ``kill -9`` cannot be caught: checkpoint writes are
    atomic (``alexnet.checkpoint.AtomicCheckpointIO``), so the previous checkpoint survives it.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.checkpoint: str | None = None
        self._requeue = None  # submitit's handler, called after saving
        self._requeue_signal: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame):
            if self.signal is None:  # a second Ctrl+C changes nothing: the stop is already on its way
                self.signal = signum
                log.info(f"{signal.Signals(signum).name}: stopping after this batch, then saving last.ckpt "
                         "(kill -9 stops at once; the checkpoints on disk stay whole)")

        usr = submitit_requeue_signal()
        if usr is not None:
            self._requeue, self._requeue_signal = signal.signal(usr, on_signal), usr
        # Lightning restores the handlers it found when fitting ends.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
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
        name = signal.Signals(self.signal or signal.SIGTERM).name
        where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        if self.checkpoint:
            message = f"stopped by {name} at {where}: saved {self.checkpoint}\n{resume_hint(trainer)}"
        else:
            message = f"stopped by {name} at {where} while {trainer.state.fn}ing: no checkpoint written (training had finished)"
        stop = RunStopped(message, "interrupted", 128 + (self.signal or signal.SIGTERM), self.checkpoint)
        if self._requeue is not None and self.signal == self._requeue_signal:
            requeue, signum = self._requeue, self.signal
            stop.then = lambda: requeue(signum, None)  # submitit requeues the job (rank 0) and exits
        return stop


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
    args = " ".join(a for a in hydra.overrides.task if not a.startswith(("ckpt_path=", "hydra.run.dir=")))
    return f"resume with: python train.py {args} hydra.run.dir={hydra.runtime.output_dir} ckpt_path=last".replace("  ", " ")


class Diverged(RunStopped):
    """A NaN/inf loss or weights: the run cannot go on, and its last good checkpoint is kept."""


def check_weights_finite(trainer: L.Trainer, path: str) -> None:
    # Weights are the same on every rank (DDP all-reduces the gradients), so every rank decides alike.
    if all(bool(torch.isfinite(p).all()) for p in trainer.lightning_module.parameters()):
        return
    good = latest_good_checkpoint(trainer)
    kept = f"the last good checkpoint is {good}" if good else "no checkpoint had been written yet"
    raise Diverged(
        f"the weights are NaN/inf at epoch {trainer.current_epoch}, step {trainer.global_step}: {path} not written; {kept}. "
        "Lower optim.lr or check the data.",
        "diverged",
        3,
        good,
    )


class FiniteLoss(Callback):
    """Stops the run when the training loss is NaN or inf, before backward and the optimizer step.

    The weights stay those of the last finite step, and nothing is saved: the checkpoints on disk
    are the last good ones. Under DDP the decision is taken by all ranks together (a NaN on one rank
    would otherwise leave the others waiting in the gradient all-reduce).
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        good = latest_good_checkpoint(trainer)
        kept = f"the last good checkpoint is {good}" if good else "no checkpoint had been written yet"
        raise Diverged(
            f"training loss is {loss.item()} at epoch {trainer.current_epoch}, step {trainer.global_step}: "
            f"stopped before the update; {kept}. Lower optim.lr or check the data.",
            "diverged",
            3,
            good,
        )
