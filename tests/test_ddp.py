"""DDP with Hydra: 1 and 2 processes train the same recipe from the same global batch; one run
folder per job, not per rank; multiruns with DDP jobs, through Hydra's own launcher (the next
job in the same process) and through submitit's local mode (as on SLURM, its rank 1 started by
Lightning from submitit's job process), pre-empted and requeued."""

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_train
from hydra import compose, initialize_config_dir
from longrun import SAME_GRADIENT, checkpoint, prepare, start, tiny, wait_for
from omegaconf import OmegaConf


def jobs(sweep):
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_two_gloo_processes_match_one_process_in_a_multirun(tmp_path):
    prepare(tmp_path / "data", "data.resize=67")
    sweep = tmp_path / "sweep"
    # DDP job first: the next job in the same process must not inherit its DDP environment.
    run_train(
        "-m", *tiny(tmp_path / "data", tmp_path / "unused", 2, *SAME_GRADIENT), "trainer=ddp_cpu,cpu", f"hydra.sweep.dir={sweep}"
    )
    ddp, single = jobs(sweep)
    assert [j.name for j in (ddp, single)] == ["0", "1"]  # one folder per job, none per rank
    assert (ddp / "train_rank1.log").exists() and not (single / "train_rank1.log").exists()
    # The dataset check runs once per run, on rank zero.
    assert (ddp / "train.log").read_text().count("data check of") == 1 and "data check" not in (
        ddp / "train_rank1.log"
    ).read_text()
    a, b = (json.loads((j / "summary.json").read_text()) for j in (ddp, single))
    assert a["status"] == b["status"] == "finished" and a["epochs"] == b["epochs"] == 2
    for key in ("train/loss", "val/loss"):
        assert a[key] == pytest.approx(b[key], rel=1e-5), key
    for key in ("val/top1_err", "val/top5_err", "train/top1_err"):
        assert a[key] == b[key], key


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            found[int(proc.name)] = (ppid, (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (ValueError, OSError, IndexError):
            continue
    return found


def ddp_job(sweep: Path) -> int | None:
    """The submitit job process that has started a DDP rank of its own."""
    table = processes()
    jobs = [pid for pid, (_, cmd) in table.items() if "submitit.core._submit" in cmd and str(sweep) in cmd]
    return next((job for job in jobs if any(ppid == job and "train.py" in cmd for ppid, cmd in table.values())), None)


def test_submitit_ddp_job_pre_empted_requeued_and_resumed(tmp_path):
    """A DDP job (2 gloo ranks) through submitit's local mode, as on SLURM, gets submitit's
    pre-emption signal mid-epoch; both ranks stop at one batch, last.ckpt is saved, submitit
    requeues the job, which continues from last.ckpt in its own folder (ckpt_path=last)."""
    prepare(tmp_path / "data")
    sweep = tmp_path / "sweep"
    args = tiny(tmp_path / "data", tmp_path / "unused", 2, "+trainer.limit_train_batches=8", "ckpt_path=last")
    proc = start("-m", "hydra/launcher=local", *args, "trainer=ddp_cpu", f"hydra.sweep.dir={sweep}", log=tmp_path / "log")
    wait_for(proc, (sweep / "0" / "checkpoints" / "last.ckpt").exists)
    time.sleep(0.5)  # into the second epoch
    os.kill(wait_for(proc, lambda: ddp_job(sweep)), signal.SIGUSR2)
    assert proc.wait(timeout=300) == 0, (tmp_path / "log").read_text()[-3000:]

    (ddp,) = jobs(sweep)  # one folder for the job, none per rank
    assert ddp.name == "0" and (ddp / "train_rank1.log").exists()
    assert json.loads((ddp / "summary.json").read_text())["status"] == "finished"
    assert checkpoint(ddp / "checkpoints" / "last.ckpt")["global_step"] == 16
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert "stopped by SIGUSR2 at epoch 1" in logs and "Requeued job" in logs
    assert logs.count(f"ckpt_path=last: resuming from {ddp}/checkpoints/last.ckpt") == 2  # both ranks


def test_slurm_launcher_asks_one_task_per_gpu_on_each_node():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=8", "+trainer.num_nodes=2"],
            return_hydra_config=True,
        )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 8, 8)
