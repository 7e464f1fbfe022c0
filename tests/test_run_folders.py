"""Run folder names (conf/hydra/default.yaml): <time>_<id>, in time order and unique, so two runs
started in the same second each get a folder of their own; the README's resume command, which
names the folder, still continues a run in it. The paths a run records are its folder's, relative
to it, so a copy of the folder reads its own files."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, train_in_process, with_eager_lrn
from longrun import TINY, checkpoint, prepare

from alexnet.launch.run_id import run_id
from alexnet.paths import RunDir

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
        *with_eager_lrn([f"data.root={data}", *TINY, "trainer.max_epochs=1", "+trainer.limit_train_batches=1"]),
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


def test_a_saved_config_resolves_its_paths_from_any_folder_old_ones_too(tmp_path, monkeypatch):
    """Hydra saves the config unresolved: the root is this checkout's, whoever reads it, from anywhere;
    configs saved when the root was ``${oc.env:PROJECT_ROOT}`` read the same without the variable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    paths = (ROOT / "conf" / "paths" / "default.yaml").read_text()  # as train.py composes and saves it
    old = "root_dir: ${oc.env:PROJECT_ROOT}\n" + paths.split("\n", 1)[1]
    for name, node in (("new", paths), ("old", old)):
        run = RunDir(tmp_path / name)
        run.config.parent.mkdir(parents=True)
        indented = "".join(f"  {line}\n" for line in node.splitlines())
        run.config.write_text(f"paths:\n{indented}data:\n  root: ${{paths.data_dir}}/x\n")
        assert run.read_config().data.root == f"{ROOT}/data/x"


def test_a_run_records_its_own_paths_relative_to_its_folder_and_reads_them_from_where_it_is(tmp_path):
    run, copy = RunDir(tmp_path / "runs" / "R"), RunDir(tmp_path / "backup" / "R")
    (tmp_path / "real").mkdir()
    (tmp_path / "runs").mkdir()
    run.path.symlink_to(tmp_path / "real")  # Lightning's checkpoint folder is the real path
    assert run.recorded(run.checkpoints / "last.ckpt") == "checkpoints/last.ckpt"
    assert run.recorded(tmp_path / "real" / "checkpoints" / "epoch003.ckpt") == "checkpoints/epoch003.ckpt"
    assert run.recorded("/elsewhere/init.ckpt") == "/elsewhere/init.ckpt"  # not the run's: as it was
    assert copy.resolve("checkpoints/last.ckpt", origin=str(run.path)) == copy.checkpoints / "last.ckpt"
    # Summaries written before: absolute paths, in the folder the run was made in (its run_dir).
    assert copy.resolve(f"{run.path}/checkpoints/last.ckpt", origin=str(run.path)) == copy.checkpoints / "last.ckpt"
    assert copy.resolve("/elsewhere/init.ckpt", origin=str(run.path)) == Path("/elsewhere/init.ckpt")


def test_a_checkpoint_resumed_in_a_copy_of_its_folder_names_the_copys_files(tmp_path):
    """Lightning keeps ModelCheckpoint's paths absolute, and on a changed folder keeps only
    best_model_path (the original's file) and forgets the best score: a run resumed in a copy would
    test the original's best checkpoint, or call the first epoch after the resume the best."""
    from alexnet.checkpointing.callbacks import Checkpoint

    old, new = tmp_path / "runs" / "R" / "checkpoints", tmp_path / "backup" / "R" / "checkpoints"
    state = {
        "dirpath": str(old),
        "best_model_path": str(old / "epoch003.ckpt"),
        "best_model_score": 0.25,
        "best_k_models": {str(old / "epoch003.ckpt"): 0.25},
        "kth_best_model_path": str(old / "epoch003.ckpt"),
        "kth_value": 0.25,
        "last_model_path": str(old / "last.ckpt"),
    }
    callback = Checkpoint(run_dir=str(new.parent))
    with pytest.warns(UserWarning, match="The dirpath has changed"):  # the copy lacks those files: another folder's checkpoint
        callback.load_state_dict(dict(state))
    assert callback.best_model_path == str(old / "epoch003.ckpt") and callback.best_model_score is None
    new.mkdir(parents=True)
    for name in ("epoch003.ckpt", "last.ckpt"):
        (new / name).write_bytes(b"")
    callback = Checkpoint(run_dir=str(new.parent))
    callback.load_state_dict(dict(state))
    assert callback.best_model_path == str(new / "epoch003.ckpt") and callback.best_model_score == 0.25
    assert callback.best_k_models == {str(new / "epoch003.ckpt"): 0.25} and callback.last_model_path == str(new / "last.ckpt")
