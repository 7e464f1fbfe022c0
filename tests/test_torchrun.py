"""torchrun as the launcher: every rank runs train.py's Hydra main itself (Lightning detects
TorchElastic and starts no process of its own), yet one job writes one run folder, named after
the job and not the clock, with one config record and one summary.json, and a log per rank."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, fixture_dir, with_eager_lrn
from hydra import compose, initialize_config_dir
from longrun import SAME_GRADIENT, TINY, checkpoint, prepare, train_here, wait_for

from alexnet import torchrun as torchrun_env
from alexnet.launch import run_id
from alexnet.paths import register_resolvers

TORCHRUN_ENV = ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "RANK", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID")


@pytest.fixture
def env(monkeypatch):
    for key in (*TORCHRUN_ENV, run_id.RUN_ID, run_id.RUN_NAME):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_the_folder_is_named_after_the_torchrun_job_not_the_process_or_clock(env):
    assert run_id.run_name() is None and run_id.run_id() == f"pid{os.getpid()}"  # plain python train.py
    env.setenv("RANK", "1")  # a rank Lightning started: train.py's command line already says its part
    assert run_id.rank_overrides("train") == []

    env.setenv("SLURM_JOB_ID", "77")  # torchrun inside a SLURM job: the nodes' clocks still differ
    env.setenv("MASTER_ADDR", "10.1.2.3")
    env.setenv("MASTER_PORT", "29500")
    env.setenv("TORCHELASTIC_RUN_ID", "3f2a-uuid")  # --rdzv-id, or the uuid of --standalone
    assert run_id.run_name() == "torchrun_3f2a-uuid"
    assert run_id.rank_overrides("train") == ["hydra.output_subdir=null", "hydra.job.name=train_rank1"]
    env.setenv("RANK", "0")
    assert run_id.rank_overrides("train") == []
    env.setenv("TORCHELASTIC_RUN_ID", "none")  # no --rdzv-id: the rendezvous address
    assert run_id.run_name() == "torchrun_10.1.2.3-29500"
    env.setenv("TORCHELASTIC_RUN_ID", "team/job 5")
    assert run_id.run_name() == "torchrun_team-job-5"

    register_resolvers()
    for name, expected in ((None, r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_local"), ("torchrun_abc", "torchrun_abc")):
        if name:
            env.setenv(run_id.RUN_NAME, name)
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", ["paths.log_dir=/logs"], return_hydra_config=True)
        assert Path(str(cfg.hydra.run.dir)).parent == Path("/logs/runs")
        assert Path(str(cfg.hydra.sweep.dir)).parent == Path("/logs/multiruns")
        for folder in (cfg.hydra.run.dir, cfg.hydra.sweep.dir):
            assert re.fullmatch(expected, Path(str(folder)).name), folder


def test_a_trainer_that_does_not_fit_torchruns_world_is_one_config_error(env):
    import lightning as L

    from alexnet.errors import ConfigError
    from alexnet.training.ddp import check_world_size

    for key, value in dict(TORCHELASTIC_RUN_ID="x", WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", GROUP_RANK="0").items():
        env.setenv(key, value)
    for devices, nodes in ((2, 1), (1, 2), (1, 1)):
        trainer = L.Trainer(accelerator="cpu", devices=devices, num_nodes=nodes, strategy="ddp", logger=False)
        if devices * nodes == 2:
            check_world_size(trainer)
            continue
        with pytest.raises(
            ConfigError, match=r"^trainer.devices: 1 per node x trainer.num_nodes=1 is not torchrun's world size 2"
        ):
            check_world_size(trainer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, cwd: Path, log: Path, **extra_env: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in (run_id.RUN_ID, run_id.RUN_NAME) and not k.startswith("SLURM_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra_env)
    with open(log, "w") as out:
        argv = [sys.executable, "-m", "torch.distributed.run", *args]
        return subprocess.Popen(with_eager_lrn(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def job_records(logs: Path, jobs: list[Path], steps: int) -> list[dict]:
    """The JOBS' folders hold every .hydra/ and summary.json under LOGS (rank 0's alone), a finished
    run each, its checkpoint and rank 1's log; their summaries."""
    assert sorted(p.relative_to(logs) for p in logs.rglob(".hydra")) == [j.relative_to(logs) / ".hydra" for j in jobs]
    assert sorted(p.relative_to(logs) for p in logs.rglob("summary.json")) == [j.relative_to(logs) / "summary.json" for j in jobs]
    summaries = []
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["run_dir"] == str(job)
        assert checkpoint(job / "checkpoints" / "last.ckpt")["global_step"] == steps
        assert "[rank: 1]" in (job / "train_rank1.log").read_text()  # rank 1 logs, into a file of its own
        assert (job / "train.log").exists() and not (job / "train_rank0.log").exists()
        summaries.append(summary)
    return summaries


def only_folder(parent: Path) -> Path:
    """The one folder in PARENT, named after the torchrun job."""
    (folder,) = parent.iterdir()
    assert folder.name.startswith("torchrun_"), folder
    return folder


@pytest.fixture(scope="module")
def same_gradient(request) -> tuple[list[str], dict]:
    """A job that DDP over two ranks trains as one process does (the gradient of one global batch,
    tests/test_ddp.py), four epochs of one step; and one process's summary of it, the reference."""
    tmp = fixture_dir(request, "same_gradient")
    prepare(tmp / "data", "data.resize=67")
    job = [f"data.root={tmp / 'data'}", *TINY, "trainer.max_epochs=4", *SAME_GRADIENT]
    one = train_here(tmp / "one", *job, "trainer=cpu")
    shutil.rmtree(tmp / "one" / "checkpoints")
    return job, one


def same_as_one_process(ddp: dict, one: dict) -> None:
    for key in ("train/loss", "val/loss"):
        assert ddp[key] == pytest.approx(one[key], rel=1e-5), key
    for key in ("val/top1_err", "val/top5_err", "train/top1_err"):
        assert ddp[key] == one[key], key


def test_two_agents_as_two_nodes_run_a_sweep_into_one_folder_and_match_one_process(tmp_path, same_gradient):
    """Two torchrun agents, as on two nodes: one process each, a c10d rendezvous on 127.0.0.1 and
    no --rdzv-id; the second starts seconds later from another folder, with the same log_dir. Both
    ranks run a multirun of two jobs into one sweep folder, a folder per job and none per rank (the
    second job runs in the process group of the first: a new group on torchrun's store would not
    connect), and train its first job as one process trains it."""
    job, one = same_gradient
    logs, endpoint = tmp_path / "outputs", f"127.0.0.1:{free_port()}"
    agents = []
    for node in (0, 1):
        cwd = tmp_path / f"node{node}"
        cwd.mkdir()
        args = [
            "--nnodes=2",
            f"--node_rank={node}",
            "--nproc_per_node=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            str(ROOT / "train.py"),
            "-m",
            "seed=0,1",
            "trainer=ddp_cpu",
            "trainer.devices=1",
            "+trainer.num_nodes=2",
        ]
        agents.append(torchrun(*args, *job, f"paths.log_dir={logs}", cwd=cwd, log=tmp_path / f"log{node}"))
        time.sleep(5 if node == 0 else 0)
    codes = [agent.wait(timeout=300) for agent in agents]
    assert codes == [0, 0], "\n".join((tmp_path / f"log{n}").read_text()[-3000:] for n in (0, 1))
    sweep = only_folder(logs / "multiruns")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]  # none per rank
    first, second = job_records(logs, [sweep / "0", sweep / "1"], steps=4)
    assert not any((tmp_path / f"node{n}" / "outputs").exists() for n in (0, 1))
    same_as_one_process(first, one)
    assert (first["seed"], second["seed"]) == (0, 1)


def worker(agent: subprocess.Popen, rank: int) -> int:
    """The pid of the AGENT's worker of this RANK (its child, RANK in its environment)."""
    children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
    for pid in map(int, children):
        if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return pid
    raise AssertionError(f"no worker of rank {rank} among {children}")


def test_a_killed_rank_restarts_its_group_and_a_terminated_agent_saves_and_resumes(tmp_path, same_gradient):
    """torchrun --max-restarts=1 with ckpt_path=last: kill -9 of rank 1 after epoch 1 restarts both
    ranks, which resume from last.ckpt in the same folder; SIGTERM to the agent then stops them
    (each finishes its batch, rank 0 saves last.ckpt and records "interrupted" and a torchrun
    resume command); that command finishes the run as one uninterrupted process trains it."""
    job, one = same_gradient
    logs = tmp_path / "outputs"
    command = ["--standalone", "--nproc_per_node=2", "--max-restarts=1", str(ROOT / "train.py"), "trainer=ddp_cpu"]
    own_store = {torchrun_env.OWN_STORE: "1"}  # restarts need it (alexnet.torchrun)
    agent = torchrun(*command, *job, f"paths.log_dir={logs}", "ckpt_path=last", cwd=ROOT, log=tmp_path / "log", **own_store)
    last = wait_for(agent, lambda: next(logs.glob("runs/*/checkpoints/last.ckpt"), None))  # epoch 1's
    os.kill(worker(agent, rank=1), signal.SIGKILL)
    run = last.parent.parent
    restarted = f"resumed from {last}: continues at epoch 2/4"
    wait_for(agent, lambda: "epoch 2/4:" in (text := (run / "train.log").read_text()) and restarted in text)
    agent.send_signal(signal.SIGTERM)
    # torch's agent forwards SIGTERM to its workers, waits for them (30 s, then SIGKILL), and
    # raises the signal as SignalException: torchrun exits 1, whatever the workers' own 143.
    assert agent.wait(timeout=120) == 1, (tmp_path / "log").read_text()[-4000:]
    assert "SignalException: Process" in (tmp_path / "log").read_text()
    assert only_folder(logs / "runs") == run
    stopped = json.loads((run / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["checkpoint"] == "checkpoints/last.ckpt", stopped
    assert checkpoint(last)["global_step"] == stopped["global_step"] < 4
    hint = stopped["message"].splitlines()[-1]
    head = f"resume with: {torchrun_env.OWN_STORE}=1 torchrun {' '.join(command[:3])} train.py trainer=ddp_cpu "
    assert hint.startswith(head) and hint.endswith(f" hydra.run.dir={run} ckpt_path=last"), hint

    resume = shlex.split(hint.removeprefix(f"resume with: {torchrun_env.OWN_STORE}=1 torchrun "))
    resume = [str(ROOT / "train.py") if a == "train.py" else a for a in resume]
    agent = torchrun(*resume, cwd=ROOT, log=tmp_path / "resumed", **own_store)
    assert agent.wait(timeout=300) == 0, (tmp_path / "resumed").read_text()[-4000:]
    (resumed,) = job_records(logs, [run], steps=4)
    main_log, rank1_log = (run / "train.log").read_text(), (run / "train_rank1.log").read_text()
    assert main_log.count("training from epoch 1/4") == 1 and main_log.count(restarted) == 1
    assert main_log.count(f"resumed from {last}: continues at epoch") == 2  # after the restart, and now
    for log in (main_log, rank1_log):  # each rank started three times: afresh, restarted, resumed
        assert log.count("torchrun restart 1 of 1: the job starts again") == 1
        assert log.count(f"ckpt_path=last: resuming from {last}") == 2
    same_as_one_process(resumed, one)
