"""Hydra callbacks (conf/hydra/default.yaml): a run folder that cannot be made is one line before
any work, and a multirun runs every job, records each failure and ends with the count.

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

from alexnet.exit_codes import ExitCode
from alexnet.paths import RunDir

log = logging.getLogger(__name__)


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


def check_folder(config: DictConfig, key: str) -> None:
    try:
        folder = Path(str(OmegaConf.select(config, key)))
    except Exception:  # an unresolvable value: Hydra reports it in its own words
        return
    why = unwritable(folder)
    if why:
        # SystemExit passes through Hydra's error report, which would print a traceback for an OSError.
        what = "sweep" if "sweep" in key else "run"
        print(f"config error: {key}: cannot create the {what} folder {folder}: {why}", file=sys.stderr, flush=True)
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
    """The run folder (``hydra.run.dir``) or sweep folder (``hydra.sweep.dir``) must be creatable."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        check_folder(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        check_folder(config, "hydra.sweep.dir")


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
