import os
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet.training.config import compose_train, paper_optim  # noqa: F401 (compose_train: for the tests)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
# The eager LRN in every run the tests start: building the compiled CPU kernel takes about 2 s
# per process, more than these tiny runs train. tests/test_lrn.py checks the compiled kernel's
# numbers, and the default-run test runs it as `python train.py` does.
os.environ.setdefault("ALEXNET_LRN_COMPILED", "false")


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
    """`python train.py ARGS` in a real subprocess; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
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
