"""The project's own exceptions: a bad setting (its message starts with the config key), and a run
that stopped early on purpose (its message says why and where its checkpoint is); and what the
entry points take for bad input (one line, exit 2) rather than a fault (a traceback)."""

import os


class ConfigError(ValueError):
    """A config problem, with the offending key (``data.root: ...``) or file in its message.
    The entry points print it as one line and exit 2, never a traceback (unless ``traceback_wanted``)."""


def as_config_error(err: Exception) -> ConfigError | None:
    """A data module's bad input as a ConfigError: a ValueError whose message starts with its key
    (``data.root: ...``), or a missing file or folder (FileNotFoundError, whose message names it).
    None for anything else: a fault, whose traceback is wanted."""
    if isinstance(err, ConfigError):
        return err
    if isinstance(err, FileNotFoundError) or (isinstance(err, ValueError) and str(err).startswith("data.")):
        return ConfigError(str(err))
    return None


def traceback_wanted() -> bool:
    """HYDRA_FULL_ERROR=1, Hydra's own switch: bad input shows its traceback too, not only its one line."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


class RunStopped(Exception):
    """The run stopped early on purpose; the message says why and where its checkpoint is.
    ``then``: what to do after reporting it (submitit's requeue); ``global_zero``: whether this
    process is the run's rank zero (the one that reports it)."""

    def __init__(self, message: str, status: str, exit_code: int, checkpoint: str | None):
        super().__init__(message)
        self.status = status
        self.exit_code = exit_code
        self.checkpoint = checkpoint
        self.then = None
        self.global_zero = True


class Diverged(RunStopped):
    """A NaN/inf loss or weights: the run cannot go on, and its last good checkpoint is kept."""


class StoreUnreachable(RuntimeError):
    """A URL store (``data.store=s3://...``) stopped answering mid-run, after the retries. Not an
    OSError: an unreadable image is skipped, a store that cannot be reached stops the run."""
