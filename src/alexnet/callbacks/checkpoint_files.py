"""Checkpoint files: written atomically, found for ``ckpt_path=last``, checked before resuming.

A checkpoint that cannot be used fails here, before any work, with a message naming the file
and what is wrong, not deep inside Lightning's restore.
"""

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from alexnet.errors import ConfigError

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temporary file in the checkpoint's own folder, syncs it, then renames it over the
    target. A rename within a filesystem is atomic, so ``kill -9`` or a full disk at any moment
    leaves either the old checkpoint or the new one, never a truncated file. (Lightning's own save
    stages the bytes in the system temp folder and moves them, which degrades to a plain copy when
    that folder is on another filesystem.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(".*.ckpt.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                message = f"could not write checkpoint {path} ({err.strerror}); the previous one is intact"
                raise OSError(err.errno, message) from err
            raise
        _fsync_dir(path.parent)  # makes the rename itself survive a power cut


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
        if path.exists():
            log.info(f"ckpt_path=last: resuming from {path}")
            return str(path)
        log.info(f"ckpt_path=last: no checkpoint in {checkpoint_dir} yet, starting afresh")
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path: no checkpoint file {path.resolve()}")
    return str(path)


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
    trained = (checkpoint.get("hyper_parameters") or {}).get("model") or {}
    fc8 = "net.classifier.fc8.weight"
    if fc8 in saved and fc8 in ours and saved[fc8].shape[0] != ours[fc8].shape[0]:
        raise ConfigError(
            f"ckpt_path: {path} has {saved[fc8].shape[0]} classes (fc8), this run has data.num_classes={ours[fc8].shape[0]}"
        )
    differences = [f"model.{k}={trained[k]!r} there, {v!r} here" for k, v in model_cfg.items()
                   if k in trained and trained[k] != v]
    missing = [k for k in ours if k not in saved]
    unexpected = [k for k in saved if k not in ours]
    shapes = [f"{k}: {tuple(saved[k].shape)} there, {tuple(v.shape)} here" for k, v in ours.items()
              if k in saved and saved[k].shape != v.shape]
    if missing or unexpected or shapes or differences:
        details = differences + shapes[:3]
        if missing:
            details.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise ConfigError(f"ckpt_path: {path} is from another architecture than this run's model: {'; '.join(details)}")
