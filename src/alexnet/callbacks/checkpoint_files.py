"""Checkpoint files: written atomically, found for ``ckpt_path=last``, checked before resuming.

A checkpoint that cannot be used fails here, before any work, with a message naming the file
and what is wrong, not deep inside Lightning's restore.
"""

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from alexnet.errors import ConfigError
from alexnet.models import saved_model_config

log = logging.getLogger(__name__)


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


def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """Where ``ckpt_path=last`` looks: the ModelCheckpoint folder's last.ckpt."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"


def latest_good_checkpoint(trainer: L.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint):
        for path in (callback.last_model_path, callback.best_model_path):
            if path and Path(path).exists():
                return path
    return None


def resolve(ckpt_path: str | None, checkpoint_dir: Path) -> str | None:
    """``last``: the run folder's last.ckpt, or None (start afresh) before the first one is written,
    so the same command starts a run and continues it after every pre-emption. A path must exist."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        path = checkpoint_dir / "last.ckpt"
        problem = "is missing"
        if path.exists():
            problem = unreadable(str(path))
            if problem is None:
                log.info(f"ckpt_path=last: resuming from {path}")
                return str(path)
        # last.ckpt is written after the epoch's other checkpoints: a write that failed there
        # (full disk) leaves a whole epochNNN.ckpt, and starting afresh would throw that epoch away.
        newest = newest_complete(checkpoint_dir, exclude=path)
        if newest is not None:
            log.warning(f"ckpt_path=last: {path} {problem}; resuming from the newest complete checkpoint {newest}")
            return str(newest)
        if path.exists():  # unreadable and nothing else: the user decides, nothing is overwritten
            load(str(path))
        log.info(f"ckpt_path=last: no checkpoint in {checkpoint_dir} yet, starting afresh")
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path: no checkpoint file {path.resolve()}")
    return str(path)


def unreadable(path: str) -> str | None:
    """None when ``path`` loads as a checkpoint of this project, else why not."""
    try:
        load(path)
        return None
    except ConfigError as err:
        return "is not readable (truncated or corrupt)" if "not a readable" in str(err) else "is not a checkpoint of this project"


def newest_complete(folder: Path, exclude: Path) -> Path | None:
    """The checkpoint of ``folder`` furthest into training (global step, then time) that loads whole."""
    candidates = []
    for path in folder.glob("*.ckpt"):
        if path == exclude or not path.is_file():
            continue
        try:
            checkpoint = load(str(path))
        except ConfigError:
            continue
        candidates.append((int(checkpoint.get("global_step", -1)), path.stat().st_mtime, path))
    return max(candidates)[2] if candidates else None


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


def check_matches(path: str, checkpoint: dict, module: torch.nn.Module, model_cfg: dict) -> None:
    """The checkpoint must be of this very network: same class count, same layers, same shapes."""
    saved = checkpoint["state_dict"]
    ours = module.state_dict()
    trained = saved_model_config((checkpoint.get("hyper_parameters") or {}).get("model") or {})
    fc8 = "net.classifier.fc8.weight"
    if fc8 in saved and fc8 in ours and saved[fc8].shape[0] != ours[fc8].shape[0]:
        raise ConfigError(
            f"ckpt_path: {path} has {saved[fc8].shape[0]} classes (fc8), this run has data.num_classes={ours[fc8].shape[0]}"
        )
    differences = [
        f"model.{k}={trained[k]!r} there, {v!r} here" for k, v in model_cfg.items() if k in trained and trained[k] != v
    ]
    missing = [k for k in ours if k not in saved]
    unexpected = [k for k in saved if k not in ours]
    shapes = [
        f"{k}: {tuple(saved[k].shape)} there, {tuple(v.shape)} here"
        for k, v in ours.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if missing or unexpected or shapes or differences:
        details = differences + shapes[:3]
        if missing:
            details.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise ConfigError(f"ckpt_path: {path} is from another architecture than this run's model: {'; '.join(details)}")


IDENTITY = "class_identity"  # the checkpoint's key: what each output of fc8 means


def class_differences(saved: list[str], current: list[str], there: str, here: str) -> str | None:
    """How two ordered class lists differ (None: they are the same), both sides named."""
    if list(saved) == list(current):
        return None

    def some(names: list[str]) -> str:
        return ", ".join(names[:5]) + (f" ... ({len(names)} in all)" if len(names) > 5 else "")

    only_saved = [c for c in saved if c not in set(current)]
    only_current = [c for c in current if c not in set(saved)]
    parts = [f"{len(saved)} classes {there}, {len(current)} {here}"]
    if only_saved:
        parts.append(f"only {there}: {some(only_saved)}")
    if only_current:
        parts.append(f"only {here}: {some(only_current)}")
    if not only_saved and not only_current:
        i = next(i for i, (a, b) in enumerate(zip(saved, current)) if a != b)
        parts.append(f"the same classes in another order (label {i} is {saved[i]!r} {there}, {current[i]!r} {here})")
    return "; ".join(parts)


def check_classes(key: str, path: str, checkpoint: dict, current: dict | None, strict: bool) -> dict | None:
    """Compares the classes a checkpoint was trained on with this data's. ``strict``: a difference
    is an error (resume, evaluation); else a warning (fine-tuning replaces fc8). Returns what was
    found, for the run's summary; a checkpoint saved before class names were recorded is a warning."""
    saved = checkpoint.get(IDENTITY)
    if current is None:
        return None
    if not saved:
        log.warning(
            f"{key}: {path} records no class names (saved before they were kept in checkpoints): "
            "cannot check that its classes are this data's"
        )
        return {"classes": "not recorded in the checkpoint"}
    differences = class_differences(saved["classes"], current["classes"], "in the checkpoint", f"in {current['root']}")
    if differences and strict:
        raise ConfigError(f"{key}: {path} was trained on other classes than this data: {differences}")
    if differences:
        log.warning(f"{key}: {path} was trained on other classes: {differences}; fc8 is new for this data's classes")
        return {"classes": "differ", "differences": differences}
    if saved.get("train_fingerprint") != current.get("train_fingerprint"):
        log.warning(
            f"{key}: {path} has this data's classes but was trained on other training files "
            f"({saved.get('train_images')} images then, {current.get('train_images')} in {current['root']} now)"
        )
        return {"classes": "same", "train_files": "differ"}
    return {"classes": "same", "train_files": "same"}


def class_identity(datamodule) -> dict | None:
    """The training split's classes in label order (label i is ``classes[i]``), their readable
    names, its image count and the data module's fingerprint of its files (names and sizes);
    None for a data module without that split. After the data module's setup."""
    train = (getattr(datamodule, "datasets", None) or {}).get("train")
    if train is None:
        return None
    classes = list(datamodule.classes)
    return {
        "classes": classes,
        "class_names": list(datamodule.class_names()),
        "train_images": len(train),
        "train_fingerprint": datamodule.train_fingerprint(),
        "root": str(datamodule.root),
    }
