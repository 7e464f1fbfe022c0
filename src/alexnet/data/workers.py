"""DataLoader workers leave stopping to the main process.

A forked worker starts with its parent's Python signal handlers, and SLURM signals every process
of a job step: ``scancel --signal=USR2`` (and submitit's ``--signal=USR2@...`` before the time
limit) and ``scontrol requeue`` / pre-emption (SIGTERM) reach the loader workers too, as Ctrl+C
(SIGINT) reaches every process of the terminal's group. In a worker, an inherited handler would
act for the run: submitit's USR2 handler (still installed in workers forked before training
starts, e.g. the validation sanity check's) writes its checkpoint pickle, requeues the job and
exits the worker, before the main process has saved last.ckpt; Lightning's SIGTERM handler
would signal DDP ranks from there; Python's default SIGINT handler ends the worker, and the main
process then fails on a dead worker instead of stopping cleanly.

So every loader worker ignores SIGINT, SIGTERM, SIGUSR2 (and submitit's signal, if set to
another with SUBMITIT_PREEMPT_SIGNAL), and takes SIGCONT's default action, as its first act:
only the main process notes the signal,
finishes the batch, saves and requeues (alexnet.callbacks.stopping.GracefulStop). A worker whose
main process is gone still exits: PyTorch's workers watch their parent. (A signal arriving in
the few milliseconds between a worker's fork and its init still meets the inherited handler.)
"""

import os
import signal
from collections.abc import Callable
from functools import partial

from lightning.fabric.utilities.seed import pl_worker_init_function


def stop_signals() -> list[signal.Signals]:
    """The signals that stop or requeue a run: SIGINT, SIGTERM, SIGUSR2 and submitit's own."""
    found = [signal.SIGINT, signal.SIGTERM, signal.SIGUSR2]
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    other = getattr(signal, f"SIG{name}", None)
    if isinstance(other, signal.Signals) and other not in found:
        found.append(other)
    return found


def ignore_stop_signals() -> None:
    for signum in stop_signals():
        signal.signal(signum, signal.SIG_IGN)
    # SLURM sends SIGCONT before SIGTERM; submitit's handler for it only logs ("Bypassing signal
    # SIGCONT"), once per process. The default action (continue) is all a worker needs.
    signal.signal(signal.SIGCONT, signal.SIG_DFL)


class WorkerInit:
    """A DataLoader ``worker_init_fn``: ignore the stop signals, then run ``then`` (the loader's
    own worker init, if any). Picklable, for workers that are spawned rather than forked."""

    def __init__(self, then: Callable[[int], None] | None = None) -> None:
        self.then = then

    def __call__(self, worker_id: int) -> None:
        ignore_stop_signals()
        if self.then is not None:
            self.then(worker_id)

    def __repr__(self) -> str:
        return f"WorkerInit(then={self.then!r})"


def worker_init(rank: int | None = None, then: Callable[[int], None] | None = None) -> WorkerInit:
    """The worker init for a loader of DDP rank RANK, chaining THEN. Without THEN it chains what
    Lightning would have added itself to a loader with no ``worker_init_fn`` (its per-worker
    seeding, after ``seed_everything(workers=True)``), so the workers' random streams stay
    Lightning's."""
    if then is None and int(os.environ.get("PL_SEED_WORKERS", 0)):
        then = partial(pl_worker_init_function, rank=rank)
    return WorkerInit(then)
