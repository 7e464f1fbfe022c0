"""Helpers for the long-run tests: tiny real runs of train.py and their checkpoints."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import ROOT, compose_train, train_in_process, with_eager_lrn
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

TINY = [
    "data.train_per_class=8",
    "data.val_per_class=4",
    "data.batch_size=8",
    "data.num_workers=0",
    "+trainer.limit_val_batches=1",
    "test=false",
    "logger=none",
    "++figures=false",
    "++callbacks.model_checkpoint.save_top_k=0",
]  # last.ckpt only: half the writes


# One step per epoch over all 80 images (global batch 80: 40 per rank under DDP), no dropout and
# no random crop, flip or colour noise: the gradient is the same sum however the batch is
# shuffled or split over ranks, only added up in another order.
SAME_GRADIENT = [
    "data.batch_size=80",
    "data.resize=67",
    "data.flip=false",
    "data.pca_lighting=false",
    "model.dropout=0",
    "trainer.log_every_n_steps=1",
]


def toy(data_root: Path, epochs: int, *extra: str) -> list[str]:
    """Overrides for a toy run: 80 synthetic images of 76 px cropped to 67, a few steps, no test."""
    return [f"data.root={data_root}", *TINY, f"trainer.max_epochs={epochs}", *extra]


def tiny(data_root: Path, run: Path, epochs: int, *extra: str) -> list[str]:
    """train.py arguments for a toy run (toy) in the run folder RUN."""
    return [*toy(data_root, epochs), f"hydra.run.dir={run}", *extra]


def prepare(data_root: Path, *overrides: str) -> None:
    """Generate the data and its statistics once, so that parallel jobs or DDP ranks only read them."""
    datamodule = instantiate(compose_train(f"data.root={data_root}", *TINY, *overrides).data)
    datamodule.prepare_data()
    datamodule.setup("fit")


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def start(*args: str, log: Path) -> subprocess.Popen:
    """train.py in the background (for signals), its output in LOG."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    with open(log, "w") as out:
        argv = [sys.executable, str(ROOT / "train.py"), *with_eager_lrn(args)]
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(proc: subprocess.Popen, ready, timeout: float = 240, poll: float = 0.01):
    """Polls READY() until it returns something truthy; fails if the process ends or time runs out first."""
    end = time.time() + timeout
    while time.time() < end:
        found = ready()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"train.py ended ({proc.returncode}) before the awaited moment")
        time.sleep(poll)
    proc.kill()
    raise AssertionError("timed out")


def same_tensors(a, b) -> bool:
    """Bitwise equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def train_here(run: Path, *overrides: str) -> dict:
    """A run in this process (conftest.train_in_process); its summary."""
    return train_in_process(run, *overrides).summary


class SigtermWhileTesting(Callback):
    """Sends this process SIGTERM as the first test batch starts, as a pre-emption during the test
    after fitting would (in-process: no train.py to start). ``+callbacks.x._target_=longrun.SigtermWhileTesting``."""

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


class SigtermWhileFitting(Callback):
    """Sends this process SIGTERM as the first training batch starts, as a pre-emption would
    (in-process: no train.py to start). ``+callbacks.x._target_=longrun.SigtermWhileFitting``."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def fit_seconds(path: Path) -> float:
    """The run's fitting time up to this checkpoint (alexnet.checkpointing.callbacks.FitRecord)."""
    return checkpoint(path)["callbacks"]["FitRecord"]["fit_seconds"]
