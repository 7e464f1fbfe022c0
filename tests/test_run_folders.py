"""Run folder names (conf/hydra/default.yaml): <time>_<id>, in time order and unique, so two runs
started in the same second each get a folder of their own; the README's resume command, which
names the folder, still continues a run in it."""

import json
import os
import re
import subprocess
import sys
import time

from conftest import ROOT, run_train, with_eager_lrn
from longrun import TINY, checkpoint, prepare

from alexnet.paths import RunDir

NAME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_pid(\d+)")


def test_run_id_is_the_slurm_job_else_the_process():
    cases = [{}, {"SLURM_JOB_ID": "77"}, {"SLURM_JOB_ID": "80", "SLURM_ARRAY_JOB_ID": "76", "SLURM_ARRAY_TASK_ID": "3"}]
    code = (
        "import os, sys; sys.argv = ['train.py']; import train\n"
        f"for env in {cases!r}:\n"
        "    for k in ('SLURM_JOB_ID', 'SLURM_ARRAY_JOB_ID', 'SLURM_ARRAY_TASK_ID'): os.environ.pop(k, None)\n"
        "    os.environ.update(env); print(train.run_id())\n"
        "print(os.getpid())"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "ALEXNET_RUN_ID"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    plain, job, array, pid = out.stdout.split()
    assert (plain, job, array) == (f"pid{pid}", "job77", "job76_3")


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
    run_train(
        f"data.root={data}",
        *TINY,
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=1",
        f"paths.log_dir={logs}",
        f"hydra.run.dir={run}",
        "ckpt_path=last",
    )
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
