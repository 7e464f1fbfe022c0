"""Interruptions: SIGTERM (pre-emption) and SIGINT save a checkpoint and exit with a message naming
it; kill -9 during a checkpoint write leaves the previous one whole; a SIGTERM during the test
after fitting is recorded too; each time ckpt_path=last continues, and the summary counts every
session's fitting time; a NaN loss stops the run and keeps the last good checkpoint."""

import csv
import json
import multiprocessing
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, train_in_process
from longrun import checkpoint, fit_seconds, prepare, start, toy, wait_for

from alexnet.errors import RunStopped
from alexnet.exit_codes import ExitCode

STEPS = 16  # training steps per epoch (batch 4 of 80 images); three epochs
# A 256 MiB checkpoint written over the file in argv[1], as Lightning's trainer writes one through the run's plugin.
OVERWRITE = """
import sys, torch
from alexnet.checkpointing.io import AtomicCheckpointIO
AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2**26)}, "global_step": -1}, sys.argv[1])
"""


def test_a_run_stopped_three_ways_continues_to_the_end(tmp_path):
    prepare(tmp_path / "data")
    run, ckpts = tmp_path / "run", tmp_path / "run" / "checkpoints"
    overrides = toy(
        tmp_path / "data",
        3,
        f"+trainer.limit_train_batches={STEPS}",
        "data.batch_size=4",
        "ckpt_path=last",
        "logger=csv",
        "trainer.log_every_n_steps=1",
    )
    args = [*overrides, f"hydra.run.dir={run}"]
    last = ckpts / "last.ckpt"

    # 1. SIGTERM in the second epoch (last.ckpt of the first is there): saved, named, exit 128+15.
    proc = start(*args, log=tmp_path / "1.log")
    wait_for(proc, last.exists)
    time.sleep(0.1)  # into the second epoch (16 steps of a few tens of ms)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    out = (tmp_path / "1.log").read_text()
    assert "stopped by SIGTERM at epoch 1" in out and f"saved {last}" in out and "ckpt_path=last" in out
    step = checkpoint(last)["global_step"]
    assert STEPS < step < 2 * STEPS, step  # mid-epoch
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    first = fit_seconds(last)

    # 2. The same command resumes; Ctrl+C (SIGINT) in the third epoch stops it the same way.
    mtime = last.stat().st_mtime_ns
    proc = start(*args, log=tmp_path / "2.log")
    wait_for(proc, lambda: last.stat().st_mtime_ns != mtime)  # the second epoch's last.ckpt
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert "stopped by SIGINT at epoch 2" in (tmp_path / "2.log").read_text()
    before = checkpoint(last)
    assert 2 * STEPS < before["global_step"] < 3 * STEPS
    second = fit_seconds(last)
    assert second > first > 0  # the first session's fitting time and then the second's

    # 3. Killed with SIGKILL while a checkpoint is being written: the write goes to a temporary file
    # beside it, so last.ckpt is still the previous, complete one. The writer is the run's own
    # checkpoint IO (AtomicCheckpointIO) in a process of its own, writing over last.ckpt.
    writer = subprocess.Popen([sys.executable, "-c", OVERWRITE, str(last)], cwd=ROOT)
    wait_for(writer, lambda: list(ckpts.glob(".*.ckpt.*.tmp")), poll=0.002)
    writer.kill()
    writer.wait(timeout=60)
    assert list(ckpts.glob(".*.ckpt.*.tmp"))  # the killed write's leftover, for the next run to clear
    after = checkpoint(last)
    assert after["global_step"] == before["global_step"]
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())

    # 4. Once more, to the end of fitting; SIGTERM in the test that follows (in this process: the
    # stops above are what needs a process of its own). Fitting had finished: nothing is saved,
    # the checkpoint tested is named, and the same command resumes.
    tested = [*overrides, "test=true", "+trainer.limit_test_batches=2"]
    with pytest.raises(RunStopped) as stop:  # train.py prints it and exits with its code
        train_in_process(run, *tested, "+callbacks.sigterm._target_=longrun.SigtermWhileTesting")
    assert stop.value.exit_code == ExitCode.TERMINATED
    assert f"stopped by SIGTERM while testing {last}" in str(stop.value)
    assert "resume with: python train.py" in str(stop.value) and str(stop.value).endswith("ckpt_path=last")
    interrupted = json.loads((run / "summary.json").read_text())
    assert interrupted["status"] == "interrupted" and interrupted["checkpoint"] == "checkpoints/last.ckpt"  # the folder's
    assert interrupted["message"] == str(stop.value)
    assert checkpoint(last)["global_step"] == 3 * STEPS
    assert not list(ckpts.glob(".*.tmp"))  # the killed write's leftover is gone

    # 5. The resume trains nothing more and runs the test; the summary is the whole run's: every
    # session's fitting time, and the validation error of the last epoch, fitted two sessions ago.
    summary = train_in_process(run, *tested).summary
    assert summary["status"] == "finished" and checkpoint(last)["global_step"] == 3 * STEPS
    assert summary["fit_seconds"] >= round(fit_seconds(last), 1) >= round(second, 1)
    assert {"test/top1_err", "val/top1_err", "train/loss"} <= summary.keys()
    assert json.loads((run / "summary.json").read_text()) == summary
    # The metrics of all sessions are in one metrics.csv: each epoch validated once, steps in order.
    *fitting, test = csv.DictReader((run / "csv" / "metrics.csv").open())
    assert [r["epoch"] for r in fitting if r["val/top1_err"]] == ["0", "1", "2"]
    assert test["test/top1_err"] == str(summary["test/top1_err"]) and not any(r["test/top1_err"] for r in fitting)
    steps = [int(r["step"]) for r in fitting]
    assert steps == sorted(steps) and steps[-1] == 3 * STEPS - 1


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr 30: the first epoch's two steps stay finite, the next loss is NaN; it is read as validation
    # starts, where Lightning tears down only the validation loop. One persistent loader worker: the
    # run must stop it (workers ignore SIGTERM, so one left running would hang the process's exit).
    run = tmp_path / "run"
    with pytest.raises(RunStopped) as stop:  # train.py prints it and exits with its code
        train_in_process(run, *toy(tmp_path / "data", 3, "+trainer.limit_train_batches=2", "optim.lr=30", "data.num_workers=1"))
    assert multiprocessing.active_children() == []
    last = run / "checkpoints" / "last.ckpt"
    assert stop.value.exit_code == ExitCode.DIVERGED
    assert "training loss is nan at epoch 1" in str(stop.value) and f"the last good checkpoint is {last}" in str(stop.value)
    good = checkpoint(last)
    assert good["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in good["state_dict"].values())
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"
