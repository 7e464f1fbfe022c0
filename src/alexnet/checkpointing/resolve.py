"""Which checkpoint a run starts from: ``ckpt_path=last`` is the run folder's last.ckpt, or the
newest whole checkpoint beside it when last.ckpt is missing or unreadable, or none (start afresh)."""

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from alexnet.checkpointing.io import load
from alexnet.errors import ConfigError
from alexnet.paths import RunDir

log = logging.getLogger(__name__)


def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """Where ``ckpt_path=last`` looks: the ModelCheckpoint folder's last.ckpt."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return RunDir(trainer.default_root_dir).last_checkpoint


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
        path = checkpoint_dir / RunDir.LAST
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


def run_checkpoint(run: RunDir) -> tuple[Path, str | None]:
    """The checkpoint a run folder stands for (eval.py, predict.py): the one its test scored (its
    summary's ``test_checkpoint``, read in this folder wherever the folder was copied), else its
    last.ckpt; and a warning when the tested one is missing and last.ckpt stands in for it."""
    summary = run.read_summary() or {}
    last = run.last_checkpoint
    recorded = summary.get("test_checkpoint")
    if recorded:
        tested = run.resolve(recorded, summary.get("run_dir"))
        if tested.is_file():
            return tested, None
        if last.is_file():
            return last, f"{run.summary}: the tested checkpoint {tested} is missing; using {last} instead"
        raise FileNotFoundError(f"{run.path}: the tested checkpoint {tested} is missing, and so is {last}")
    if last.is_file():
        return last, None
    raise FileNotFoundError(f"{run.path}: no checkpoint ({RunDir.CHECKPOINTS}/{RunDir.LAST} is missing)")
