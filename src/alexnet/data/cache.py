"""Where a dataset's caches go: the training-set statistics (``stats``) and the archive
indexes (``tarindex``).

- ``data.cache_dir`` when it is set;
- else beside the data, when the data folder is writable;
- else a per-user folder named after the data folder's absolute path,
  ``$XDG_CACHE_HOME/alexnet/<path>`` (``~/.cache/alexnet/<path>`` without XDG_CACHE_HOME):
  a shared, read-only dataset on a cluster.

A cache already beside the data is read from there even when the folder is read-only (one
computed there once serves every user). Whether a folder is writable is found by creating a
file in it: ``os.access`` answers yes to root on a read-only mount or an immutable folder.
"""

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from alexnet.errors import ConfigError

log = logging.getLogger(__name__)


def user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "alexnet"


def user_cache(data_root: Path) -> Path:
    """The per-user cache folder of one data folder: readable (its path) and unique (its hash)."""
    path = str(Path(data_root).resolve())
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", path).strip("_")[-80:]
    return user_cache_root() / f"{readable}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def writable(folder: Path) -> bool:
    """True when a file can really be created in ``folder`` (which must exist)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".alexnet-write-test-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


class CacheFolder:
    """The caches of the data in ``data_root``; ``configured`` is ``data.cache_dir``."""

    def __init__(self, data_root: Path, configured: Path | None = None):
        self.data_root = Path(data_root)
        self.configured = Path(configured) if configured else None
        self._target: Path | None = None

    def candidates(self) -> list[Path]:
        return [self.configured] if self.configured else [self.data_root, user_cache(self.data_root)]

    def existing(self, name: str) -> list[Path]:
        """The caches called ``name`` that exist, in the order they are looked at."""
        return [folder / name for folder in self.candidates() if (folder / name).is_file()]

    def target(self) -> Path:
        """The folder new caches are written to (created if needed)."""
        if self._target is None:
            self._target = self.choose()
        return self._target

    def choose(self) -> Path:
        if self.configured is not None:
            if not self.make(self.configured):
                raise ConfigError(f"data.cache_dir: cannot write to {self.configured.resolve()}")
            return self.configured
        if writable(self.data_root):
            return self.data_root
        fallback = user_cache(self.data_root)
        if not self.make(fallback):
            raise ConfigError(
                f"data.root: {self.data_root.resolve()} is not writable and neither is {fallback}: "
                f"set data.cache_dir to a writable folder for the caches"
            )
        log.warning(
            "%s is not writable: its caches go to %s (data.cache_dir sets another folder)", self.data_root.resolve(), fallback
        )
        return fallback

    @staticmethod
    def make(folder: Path) -> bool:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return writable(folder)

    def write(self, name: str, write: Callable[[Path], None], what: str) -> Path:
        """``write(tmp)`` writes the cache; it replaces ``name`` atomically (a crash never leaves a
        half-written cache; the temporary name is per process, as DDP ranks may write at once)."""
        path = self.target() / name
        tmp = path.with_name(f"{name}.{os.getpid()}.tmp")
        write(tmp)
        tmp.replace(path)
        log.info("wrote %s to %s", what, path)
        return path
