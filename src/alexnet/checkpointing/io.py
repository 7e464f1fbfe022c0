"""Checkpoint files on disk: written atomically (never a truncated file), read with a message
naming the file and what is wrong, not deep inside Lightning's restore."""

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from alexnet.errors import ConfigError


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, quota, file size limit); the message names the
    folder, the space it has and the space a checkpoint needs. The previous checkpoints are intact."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temporary file in the checkpoint's own folder, syncs it, then renames it over the
    target. A rename within a filesystem is atomic, so ``kill -9`` or a full disk at any moment
    leaves either the old checkpoint or the new one, never a truncated file. (Lightning's own save
    stages the bytes in the system temp folder and moves them, which degrades to a plain copy when
    that folder is on another filesystem.) A write that the folder has no room for is not started."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(".*.ckpt.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        needed = estimated_size(checkpoint, path)
        usage = shutil.disk_usage(path.parent)
        free = usage.free
        # The temporary file would fill the disk: do not start it. (total 0: a filesystem that reports no sizes.)
        if usage.total and free < needed:
            raise CheckpointWriteError(errno.ENOSPC, no_room(path, "not enough free space: not started", free, needed))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            # torch.save reports a failed write as a RuntimeError ("unexpected pos ... vs ..."); the
            # file's own error (ENOSPC, EDQUOT, EFBIG) is the exception it was raised while handling.
            cause = err
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__context__
            if cause is not None or isinstance(err, RuntimeError):
                reason = cause.strerror if cause is not None and cause.strerror else str(err).splitlines()[0]
                code = cause.errno if cause is not None and cause.errno else errno.EIO
                raise CheckpointWriteError(code, no_room(path, reason, shutil.disk_usage(path.parent).free, needed)) from err
            raise
        _fsync_dir(path.parent)  # makes the rename itself survive a power cut


def estimated_size(checkpoint: dict, path: Path) -> int:
    """Bytes the new file will take: the tensors' bytes (weights, momentum, ...), or the previous
    checkpoint of this folder when that is larger (pickled metadata, alignment)."""
    tensors = 0
    stack = [checkpoint]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            tensors += item.numel() * item.element_size()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    previous = [p.stat().st_size for p in path.parent.glob("*.ckpt") if p.is_file()]
    return max([tensors, *previous])


def no_room(path: Path, reason: str, free: int, needed: int) -> str:
    kept = sorted(p.name for p in path.parent.glob("*.ckpt") if p.is_file())
    previous = f"the previous checkpoints are intact ({', '.join(kept)})" if kept else "no checkpoint had been written yet"
    if free < needed:
        fix = f"Free at least {mib(needed - free)} there"
    else:  # room on the disk, yet the write failed: a per-user quota or a file size limit
        fix = "Check the quota and the file size limit (ulimit -f) there"
    return (
        f"could not write checkpoint {path} ({reason}): {path.parent} has {mib(free)} free and a checkpoint needs "
        f"about {mib(needed)}; {previous}. {fix} and resume with ckpt_path=last"
    )


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.1f} GiB"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str) -> dict:
    """Reads a checkpoint (memory-mapped: cheap, however large), or explains why it cannot be read."""
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:
        siblings = sorted(p.name for p in Path(path).parent.glob("*.ckpt") if str(p) != str(path))
        hint = f"; other checkpoints beside it: {', '.join(siblings)}" if siblings else ""
        reason = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"ckpt_path: {path} is not a readable checkpoint (truncated or corrupt? {reason}){hint}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"ckpt_path: {path} is not a Lightning checkpoint of this project (it has no 'state_dict')")
    return checkpoint
