"""The project's own exceptions: a bad setting (its message starts with the config key), and a run
that stopped early on purpose (its message says why and where its checkpoint is)."""


class ConfigError(ValueError):
    """A config problem, with the offending key (``data.root: ...``) in its message."""


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
