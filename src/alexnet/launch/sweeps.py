"""Hydra callbacks (conf/hydra/default.yaml): a run folder that cannot be made, or that holds an
earlier run this one does not continue (alexnet.folder_reuse), is one line before any work, and a
multirun runs every job, records each failure and ends with the count.

Hydra's basic sweeper runs every job of a batch, then re-raises the first failed job's exception
and prints a ``CompactHydraException`` as one line; ``JobFailed`` is that exception, and its text
is the sweep's count, read from the job folders' summary.json when it is printed. A sweep whose
jobs all finished prints the same count from ``on_multirun_end``.
"""

import logging
import os
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from alexnet import folder_reuse
from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode
from alexnet.launch.run_id import run_name
from alexnet.paths import RunDir
from alexnet.torchrun import check_own_store, restarts

log = logging.getLogger(__name__)
MULTIRUN_RECORD = "multirun.yaml"  # what Hydra's sweeper writes into the sweep folder


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be made and written to, or None. Checked on the nearest existing
    folder above it, so nothing is created here (the run folder's name may hold the time)."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    # access() answers EROFS even for root, and EACCES for everybody else.
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def check_folder(config: DictConfig, key: str) -> Path | None:
    """The folder ``key`` names, when it can be made and written to (ConfigError if not); None when
    its value does not resolve (Hydra reports that in its own words)."""
    try:
        folder = Path(str(OmegaConf.select(config, key)))
    except Exception:
        return None
    why = unwritable(folder)
    if why:
        what = "sweep" if "sweep" in key else "run"
        raise ConfigError(f"{key}: cannot create the {what} folder {folder}: {why}")
    return folder


def records(config: DictConfig) -> bool:
    """Whether this process writes the job's .hydra/ record: a DDP rank > 0 (Lightning's or
    torchrun's) leaves it to rank 0 (hydra.output_subdir=null, alexnet.training.ddp, alexnet.launch.run_id)."""
    return OmegaConf.select(config, "hydra.output_subdir") is not None


def reuse_marks(config: DictConfig) -> tuple[str, ...]:
    """What shows an earlier run in a folder to this process. A rank > 0 starts beside its rank 0,
    which may have written this start's .hydra/ already: it looks only at what training writes."""
    return (RunDir.START, *RunDir.TRAINED) if records(config) else RunDir.TRAINED


def one_line(check) -> None:
    """Runs ``check``; its ConfigError is train.py's one line and exit 2, before Hydra writes anything.
    (SystemExit passes through Hydra's error report, which would print a traceback.)"""
    try:
        check()
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr, flush=True)
        sys.exit(ExitCode.CONFIG_ERROR)


class JobFailed(CompactHydraException):
    """A multirun job that failed; the job's own message is ``job_error``, printed when it failed."""

    def __init__(self, job_error: str, sweep_dir: str | None):
        super().__init__(job_error, sweep_dir)
        self.job_error, self.sweep_dir = job_error, sweep_dir

    def __str__(self) -> str:
        return sweep_count(Path(self.sweep_dir))[0] if self.sweep_dir else self.job_error


def job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [config.parent.parent for config in sweep_dir.rglob(RunDir.CONFIG)]
    return sorted(jobs, key=lambda p: (len(str(p)), str(p)))  # 0, 1, ..., 10 in job order


def sweep_count(sweep_dir: Path) -> tuple[str, int]:
    """The line saying how many jobs finished and which did not (by status), and the number that did not."""
    statuses = {}
    for job in job_dirs(sweep_dir):
        try:
            summary = RunDir(job).read_summary()
        except ValueError:
            summary = {"status": "unreadable summary.json"}
        statuses[job] = (summary or {}).get("status", "incomplete (no summary.json)")
    finished = sum(1 for s in statuses.values() if s == "finished")
    others = {job: s for job, s in statuses.items() if s != "finished"}
    line = f"multirun {sweep_dir}: {finished} of {len(statuses)} jobs finished"
    if others:
        by_status: dict[str, list[str]] = {}
        for job, status in others.items():
            by_status.setdefault(status, []).append(str(job.relative_to(sweep_dir)))
        line += ", " + ", ".join(f"{len(jobs)} {status} (job {', '.join(jobs)})" for status, jobs in by_status.items())
        line += "; each job's summary.json says why"
    return line, len(others)


class RunFolders(Callback):
    """The run folder (``hydra.run.dir``) or sweep folder (``hydra.sweep.dir``) must be creatable,
    and hold no earlier run unless this one continues it or overwrites it (alexnet.folder_reuse).
    Checked here, before Hydra's run_job writes .hydra/ and opens the log in the folder, so that a
    refused start leaves it as it was. Under torchrun the other ranks may already be writing
    their logs when rank 0 overwrites: theirs are kept."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        one_line(lambda: self.check_run(config))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        one_line(lambda: self.check_sweep(config))

    @staticmethod
    def check_run(config: DictConfig) -> None:
        key = "hydra.run.dir"
        folder = check_folder(config, key)
        if folder is not None:
            check_restarts(config, folder)
            folder_reuse.check_run(config, key, folder, reuse_marks(config), records(config), logs=run_name() is None)

    @staticmethod
    def check_sweep(config: DictConfig) -> None:
        key = "hydra.sweep.dir"
        folder = check_folder(config, key)
        if folder is None:
            return
        check_restarts(config, folder)
        if not adds_job_folders(config):
            # Hydra's launcher writes multirun.yaml in every process, so under torchrun another rank
            # of this same job may have written it already: there only the jobs' folders show a run.
            sweep_record = MULTIRUN_RECORD if records(config) and run_name() is None else None
            folder_reuse.check_sweep(
                config, key, folder, reuse_marks(config), sweep_record, records(config), logs=run_name() is None
            )


def check_restarts(config: DictConfig, folder: Path) -> None:
    """torchrun --max-restarts: every start of the group must be able to connect and to continue the run."""
    check_own_store()
    started = restarts()
    if started is not None:
        folder_reuse.check_restartable(config, folder, started[1])


def adds_job_folders(config: DictConfig) -> bool:
    """The sweeper says it numbers its jobs after those already in the sweep folder (a search that
    continues its study): then no earlier job folder is written into, and each job's own folder is
    still checked when it starts (alexnet.training.run)."""
    from hydra.utils import get_class

    target = OmegaConf.select(config, "hydra.sweeper._target_")
    return bool(target) and getattr(get_class(target), "adds_job_folders", False)


class SweepReport(Callback):
    """Each failed job in one line as it ends; the count of finished and failed jobs at the end."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status != JobStatus.FAILED or config.hydra.mode != RunMode.MULTIRUN:
            return
        job = RunDir(config.hydra.runtime.output_dir)
        try:
            error = (job.read_summary() or {}).get("error") or (job.read_summary() or {}).get("message")
        except ValueError:
            error = None
        why = f": {error.splitlines()[0]}" if error else ""
        # Hydra's basic sweeper runs every job; an Optuna search (hparams_search=) ends at its rate.
        rate = OmegaConf.select(config, "hydra.sweeper.max_failure_rate")
        then = (
            "the sweep goes on"
            if rate is None
            else f"the search ends after this batch of trials if over {rate:.0%} of it failed (hydra.sweeper.max_failure_rate)"
        )
        log.error(f"job {config.hydra.job.num} failed{why}; recorded in {job.summary}; {then}")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        # Reached only when no job failed (a failure ends the sweep through JobFailed).
        line, _ = sweep_count(Path(str(config.hydra.sweep.dir)))
        log.info(line)
