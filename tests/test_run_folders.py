"""Run folder names (conf/hydra/default.yaml): <time>_<id>, in time order and unique, so two runs
started in the same second each get a folder of their own; the README's resume command, which
names the folder, still continues a run in it."""

import json
import os
import re
import subprocess
import sys
import time

from conftest import ROOT, train_in_process
from longrun import TINY, checkpoint, prepare

from alexnet.launch.run_id import run_id

NAME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_pid(\d+)")


def test_run_id_is_the_slurm_job_else_the_process(monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    assert run_id() == f"pid{os.getpid()}"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert run_id() == "job77"
    monkeypatch.setenv("SLURM_JOB_ID", "80")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "76")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert run_id() == "job76_3"


def test_two_runs_started_at_once_get_a_folder_each_and_resume_in_it(tmp_path):
    data, logs = tmp_path / "data", tmp_path / "outputs"
    prepare(data)
    args = [
        sys.executable,
        str(ROOT / "train.py"),
        f"data.root={data}",
        *TINY,
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        f"paths.log_dir={logs}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "ALEXNET_RUN_ID"}
    time.sleep(1.02 - time.time() % 1)  # both start just after a second begins: their times will mostly agree
    procs = [
        subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)

    runs = sorted((logs / "runs").iterdir())
    assert len(runs) == 2, runs
    assert all(NAME.fullmatch(r.name) for r in runs), runs
    assert sorted(int(NAME.fullmatch(r.name)[1]) for r in runs) == sorted(p.pid for p in procs)
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["run_dir"] == str(run)

    # README, "Long runs": the same command with hydra.run.dir=<its folder> ckpt_path=last continues it there.
    run = runs[0]
    overrides = [f"data.root={data}", *TINY, "trainer.max_epochs=2", "+trainer.limit_train_batches=1", f"paths.log_dir={logs}"]
    train_in_process(run, *overrides, "ckpt_path=last")  # adds hydra.run.dir={run}; in this process
    assert sorted((logs / "runs").iterdir()) == runs  # no new folder
    assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
