"""A run folder is never reused by accident. A folder that holds an earlier run (finished, failed
or interrupted) takes a new one only when ``ckpt_path=last`` (or a checkpoint of that folder)
continues it, or when ``overwrite=true`` says to remove its record first; otherwise the start is
refused in one line and the folder is left as it was. Without this a second run would replace
summary.json, .hydra/ and metrics.csv while checkpoints/last.ckpt stayed the first run's (Lightning
writes the second's to last-v1.ckpt), and every later reader would mix the two.

Two places check. train.py's Hydra callback (``alexnet.launch.sweeps.RunFolders``) checks first,
before Hydra writes its .hydra/ record and opens the log in the folder. ``alexnet.training.run.train``
checks again for what only training writes (``RunDir.TRAINED``), for starts that come without
that callback: a job submitit requeues, a run in the tests' process.
"""

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from alexnet.errors import ConfigError
from alexnet.paths import RunDir

log = logging.getLogger(__name__)

OVERWRITE = "overwrite"  # conf/train.yaml's key


def continues(folder: Path, ckpt_path) -> bool:
    """Whether the run goes on from the folder's own checkpoint: ``last``, or a file in the folder."""
    if ckpt_path is None:
        return False
    if str(ckpt_path) == "last":
        return True
    return Path(str(ckpt_path)).expanduser().absolute().is_relative_to(Path(folder).absolute())


def overwrite_of(cfg: DictConfig) -> bool:
    value = OmegaConf.select(cfg, OVERWRITE)
    if not isinstance(value, bool):
        raise ConfigError(f"{OVERWRITE}: expected true or false, got {value!r}")
    return value


def must_clear(cfg: DictConfig, key: str, folder: Path, earlier: list[str], what: str = "run") -> bool:
    """Whether the earlier run's record in ``folder`` (``earlier``: what of it is there) must be
    removed before this run starts: True under overwrite=true, False when there is none or this run
    continues it; otherwise a ConfigError naming ``key`` (the folder's config key)."""
    overwrite = overwrite_of(cfg)
    ckpt_path = OmegaConf.select(cfg, "ckpt_path")
    if continues(folder, ckpt_path):
        if overwrite:
            raise ConfigError(
                f"{OVERWRITE}: true removes the checkpoints that ckpt_path={ckpt_path} continues from; pass one of the two"
            )
        return False
    if not earlier:
        return False
    if overwrite:
        return True
    shown = ", ".join(earlier[:4]) + (", ..." if len(earlier) > 4 else "")
    raise ConfigError(
        f"{key}: {folder} already holds a {what} ({shown}); continue it with ckpt_path=last "
        f"or start afresh, removing its record, with {OVERWRITE}=true"
    )


def check_restartable(cfg: DictConfig, folder: Path, max_restarts: int) -> None:
    """A launcher that starts the job again in its own folder (torchrun ``--max-restarts``) finds
    this run there every time but the first: refused up front, not at the first restart, unless
    the command continues it (``ckpt_path=last``) or clears it (``overwrite=true``)."""
    if max_restarts < 1 or continues(folder, OmegaConf.select(cfg, "ckpt_path")) or overwrite_of(cfg):
        return
    raise ConfigError(
        f"ckpt_path: torchrun --max-restarts={max_restarts} starts this job again in {folder}, which then holds "
        f"this run: add ckpt_path=last so that a restart continues from last.ckpt (or {OVERWRITE}=true to start afresh)"
    )


def check_run(cfg: DictConfig, key: str, folder: Path, names, clear: bool, keep=(), logs: bool = True) -> None:
    """One run's folder, when ``names`` (entries of ``RunDir``) show an earlier run in it: refused
    (ConfigError), or under overwrite=true and when ``clear`` (the process that writes the record)
    its record removed, but for ``keep`` (entries this start wrote already) and, unless ``logs``,
    the log files."""
    run = RunDir(folder)
    if must_clear(cfg, key, run.path, run.holds(names)) and clear:
        removed = run.remove([name for name in RunDir.RECORD if name not in keep], logs)
        log.warning(f"{OVERWRITE}=true: removed the earlier run's record from {run.path} ({', '.join(removed)})")


def check_sweep(cfg: DictConfig, key: str, folder: Path, names, sweep_record: str | None, clear: bool, logs: bool) -> None:
    """A multirun's folder: each job folder in it (a folder holding one of ``names``) as
    ``check_run`` treats a run's, and ``sweep_record`` (Hydra's multirun.yaml; None: not looked at) with them."""
    folder = Path(folder)
    jobs = sorted({mark.parent for name in names for mark in folder.rglob(name) if mark.parent != folder}, key=str)
    earlier = [f"{job.relative_to(folder)}/{name}" for job in jobs for name in RunDir(job).holds(names)]
    if sweep_record and (folder / sweep_record).exists():
        earlier.insert(0, sweep_record)
    if must_clear(cfg, key, folder, earlier, what="multirun") and clear:
        for job in jobs:
            RunDir(job).remove(RunDir.RECORD, logs)
        if sweep_record:
            (folder / sweep_record).unlink(missing_ok=True)
        log.warning(f"{OVERWRITE}=true: removed the earlier multirun's record from {folder} ({len(jobs)} job folders)")
