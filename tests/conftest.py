"""What the tests share: composing and running train.py in this process or as a process, the
session's shared runs, and how `make test` spreads the files over two workers."""

# The test processes are entry points too: tuned first, before torch loads, as train.py tunes itself.
# Above all OpenMP's idle threads sleep (OMP_WAIT_POLICY=PASSIVE): with torch's default they spin,
# and two workers spinning on two cores ran the torch-bound tests 2-5x slower than one worker.
from alexnet.host import tune_process

tune_process()

import contextlib
import importlib.util
import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import run_job
from hydra.types import HydraContext

from alexnet.training import config
from alexnet.training.config import paper_optim

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# The eager LRN in every run the tests compose or start (a later model.lrn_compiled=... wins):
# building the compiled CPU kernel takes about 2 s per process, more than these tiny runs train.
# tests/test_lrn.py checks the compiled kernel's numbers, and the default-run test runs it as
# `python train.py` does.
EAGER_LRN = "model.lrn_compiled=false"


def with_eager_lrn(args) -> list[str]:
    """train.py's arguments with EAGER_LRN last (after any -m), unless they choose the LRN themselves."""
    return [*args] if any(a.startswith("model.lrn_compiled=") for a in args) else [*args, EAGER_LRN]


def compose_train(*overrides: str):
    """alexnet.training.config.compose_train, with the tests' eager LRN."""
    return config.compose_train(EAGER_LRN, *overrides)


# train.py overrides for one batch of each phase, test skipped: a real run in seconds.
ONE_BATCH = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=1",
    "+trainer.limit_val_batches=1",
    "test=false",
    "data.batch_size=8",
    "data.num_workers=0",
]

OPTIM = paper_optim()  # conf/train.yaml's optim node, for LitAlexNet's built outside a run


def run_train(
    *args: str, cwd: Path = ROOT, timeout: int = 600, check: bool = True, script: str = "train.py", env: dict | None = None
):
    """`python train.py ARGS` (with the tests' eager LRN) in a real subprocess; returns the CompletedProcess.
    For what is about the process: the command line, exit codes, signals, several processes at once."""
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    argv = [sys.executable, str(ROOT / script), *(with_eager_lrn(args) if script == "train.py" else args)]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


# In-process runs. Starting `python train.py` costs ~10 s of imports per run on 2 cores, several
# times what a tiny run trains; a run in this process costs only the run. What a run changes in
# the process (seeds, signal handlers, logging, warning filters, torch settings, environment
# variables, Hydra's globals) is put back afterwards, so no test sees another's leftovers.

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def process_state() -> dict:
    """What a run can change in this process, in a form that compares equal when unchanged."""
    loggers = {"": logging.getLogger()} | {
        name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    }
    return {
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "signals": {s: signal.getsignal(s) for s in HANDLED_SIGNALS},
        "threads": torch.get_num_threads(),
        "deterministic": (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()),
        "cudnn": (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "loggers": {
            name: (lg.level, lg.propagate, lg.disabled, tuple(lg.handlers), tuple(lg.filters)) for name, lg in loggers.items()
        },
        "warnings": (tuple(warnings.filters), warnings.showwarning, logging._warnings_showwarning),
        "hydra": GlobalHydra.instance().is_initialized(),
    }


def restore(state: dict) -> None:
    os.environ.clear()
    os.environ.update(state["environ"])
    os.chdir(state["cwd"])
    for signum, handler in state["signals"].items():
        signal.signal(signum, handler)
    torch.set_num_threads(state["threads"])
    torch.use_deterministic_algorithms(state["deterministic"][0], warn_only=state["deterministic"][1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = state["cudnn"]
    torch.set_float32_matmul_precision(state["matmul_precision"])
    for name, (level, propagate, disabled, handlers, filters) in state["loggers"].items():
        logger = logging.getLogger(name or None)
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled
        logger.handlers[:], logger.filters[:] = handlers, filters
    for name, logger in logging.Logger.manager.loggerDict.items():  # loggers made during the run
        if isinstance(logger, logging.Logger) and name not in state["loggers"]:
            logger.handlers.clear()
    warnings.filters[:], warnings.showwarning, logging._warnings_showwarning = state["warnings"]
    warnings._filters_mutated()
    if not state["hydra"]:
        GlobalHydra.instance().clear()


@contextlib.contextmanager
def process_kept():
    """Runs the body, then puts the process back as it was (including the random generators)."""
    state = process_state()
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        restore(state)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])


class InProcessRun:
    """A finished in-process run: its folder, summary and the log lines it wrote (INFO and up)."""

    def __init__(self, run_dir: Path, summary: dict, log: str):
        self.dir, self.summary, self.log = run_dir, summary, log


def train_in_process(run: Path, *overrides: str, task=None) -> InProcessRun:
    """`python train.py OVERRIDES hydra.run.dir=RUN` in this process: the same composed config and
    Hydra's own job runner (the .hydra/ record, the run folder, HydraConfig for the overrides and
    the experiment's name), without the interpreter start. Raises what the run raised (ConfigError,
    RunStopped, ...) where train.py would print it and exit. TASK: what train.py's main calls
    (alexnet.launch.job.run_job, for what it dispatches), else alexnet.training.run.train."""
    from alexnet.paths import register_resolvers
    from alexnet.training.run import train

    register_resolvers()  # what train.py does before Hydra composes
    with process_kept():
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[*with_eager_lrn(overrides), f"hydra.run.dir={run}"], return_hydra_config=True)
        cfg.hydra.job.name = "train"
        log, handler = io.StringIO(), logging.StreamHandler()
        handler.stream = log
        handler.setFormatter(logging.Formatter("[%(name)s][%(levelname)s] - %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        context = HydraContext(config_loader=None, callbacks=NoJobCallbacks())
        done = run_job(task or train, cfg, "hydra.run.dir", None, context, configure_logging=False)
    return InProcessRun(Path(run), done.return_value, log.getvalue())  # return_value raises what the run raised


class NoJobCallbacks:
    """conf/hydra's job callbacks (run folders, the sweep report) are train.py's command line: none here."""

    def on_job_start(self, **_) -> None:
        pass

    def on_job_end(self, **_) -> None:
        pass


def script(name: str):
    """A top-level script (eval.py, predict.py) as a module, to call its main(argv) in this process."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py") + "_cli", ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wandb_offline_env(home: Path) -> dict:
    """No W&B key, no reachable server, wandb's own folders under HOME: what a W&B run meets here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["WANDB_BASE_URL"] = "http://127.0.0.1:9"  # the discard port: nothing listens
    env["NETRC"] = str(home / "netrc")  # absent: no `wandb login` key either
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(home / var.lower())
    return env


def fixture_dir(request, name: str) -> Path:
    """A folder for a module- or session-scoped fixture's runs, removed when the fixture ends unless
    a test failed meanwhile (then it stays for a look, as pytest keeps a failed test's tmp_path).
    The paper net's checkpoints are 160 MB each: kept to the end, the suite's runs would fill
    gigabytes of disk (pyproject's tmp_path_retention_policy does the same for tmp_path)."""
    path = request.getfixturevalue("tmp_path_factory").mktemp(name)
    failed_before = request.session.testsfailed

    def remove() -> None:
        if request.session.testsfailed == failed_before:
            shutil.rmtree(path, ignore_errors=True)

    request.addfinalizer(remove)
    return path


def once_per_suite(request, name: str, make) -> tuple[Path, subprocess.CompletedProcess]:
    """MAKE(folder), a command run into FOLDER, once for the whole suite: a session fixture runs
    once per xdist worker, so the second worker to need it waits for the first's (a file lock in
    the workers' shared temporary folder, pytest-xdist's "execute only once" recipe) and reads it.
    The folder is read-only to the tests and stays in pytest's temporary folder (no checkpoints)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # one process: an ordinary session fixture
        folder = fixture_dir(request, name)
        return folder, make(folder)
    shared = request.getfixturevalue("tmp_path_factory").getbasetemp().parent
    folder, record = shared / name, shared / f"{name}.json"
    with FileLock(shared / f"{name}.lock"):
        if not record.exists():
            folder.mkdir()
            proc = make(folder)
            record.write_text(json.dumps([proc.args, proc.returncode, proc.stdout, proc.stderr]))
    return folder, subprocess.CompletedProcess(*json.loads(record.read_text()))


@pytest.fixture(scope="session")
def cli_run(request):
    """One `python train.py debug=fdr ...` (a fast dev run) through the real command line: its run
    folder and its console, for the tests of the CLI's output (test_training, test_console)."""

    def make(tmp: Path) -> subprocess.CompletedProcess:
        args = ["debug=fdr", f"data.root={tmp}/synthetic", "data.train_per_class=8", "data.val_per_class=4"]
        return run_train(*args, f"hydra.run.dir={tmp / 'run'}")

    tmp, proc = once_per_suite(request, "cli", make)
    return tmp / "run", proc


@pytest.fixture(scope="session")
def sweep(request):
    """One multirun through train.py with logger=wandb (offline), whose middle job has a bad value:
    the jobs' folders (test_training), W&B grouping (test_wandb) and a sweep that goes on past a
    failed job (bad_input/test_sweeps) are read from it."""

    def make(tmp: Path) -> subprocess.CompletedProcess:
        return run_train(
            "-m",
            "debug=fdr",
            f"data.root={tmp}/synthetic",
            "data.train_per_class=8",
            "data.val_per_class=4",
            "++figures=false",
            "logger=wandb",
            "logger.wandb.mode=offline",
            "model.dropout=0.2,1.5,0.3",
            f"hydra.sweep.dir={tmp / 'sweep'}",
            check=False,
            env=wandb_offline_env(tmp / "wandb-home"),
        )

    tmp, proc = once_per_suite(request, "sweep", make)
    return tmp / "sweep", proc


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photos not available: {SHARED_DATA} is absent (it sits beside the project in CI)")
    return SHARED_DATA


# `make test` runs two workers (pytest-xdist, --dist loadfile): a test file is one unit, so its
# module-scoped runs are made once (the session's runs, cli_run and sweep, once for both workers:
# once_per_suite). Files holding a slow test go first, so the longest runs overlap the rest of the
# suite instead of running last, alone. (--dist loadgroup would keep the session's runs' users on
# one worker, but with pytest 9.2 it silently stops grouping: pytest-dev/pytest-xdist#1386.)
def pytest_collection_modifyitems(items):
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the file order stays within each
