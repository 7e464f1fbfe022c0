"""How the entry points end (train.py, eval.py, predict.py, prepare): the status a shell, SLURM
or a test reads. A stop by a signal exits 128 + the signal, as a shell reports a process that
the signal ended: SIGINT 130, SIGTERM 143, SIGUSR2 (submitit's requeue) 140."""

import enum
import signal


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # the run could not go on (a checkpoint write, a failed multirun job); predict: nothing classified
    CONFIG_ERROR = 2  # bad input (a config key, a path, an argument): one line naming it
    DIVERGED = 3  # a NaN/inf training loss (callbacks.finite_loss); the last good checkpoint is kept
    FLAT_START = 4  # the loss stayed at ln(classes) (callbacks.flat_start.stop=true); last.ckpt saved
    INTERRUPTED = 128 + signal.SIGINT
    TERMINATED = 128 + signal.SIGTERM


def stopped_by(signum: int) -> int:
    """The exit code of a run stopped by this signal: 128 + the signal."""
    return 128 + int(signum)
