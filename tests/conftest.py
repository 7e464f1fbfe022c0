import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def run_train(*args: str, cwd: Path = ROOT, timeout: int = 600, check: bool = True, script: str = "train.py"):
    """`python train.py ARGS` (with the tests' eager LRN) in a real subprocess; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    argv = [sys.executable, str(ROOT / script), *(with_eager_lrn(args) if script == "train.py" else args)]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"train.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photos not available: {SHARED_DATA} is absent (it sits beside the project in CI)")
    return SHARED_DATA
