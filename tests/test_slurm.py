"""hydra/launcher=slurm on a real one-node SLURM cluster (scripts/slurm/up.sh, started once for
this module and always stopped): a two-job multirun runs both jobs at once; of its jobs, one
pre-empted with submitit's USR2 and one requeued with `scontrol requeue` (SIGTERM), while
DataLoader workers run, save last.ckpt in their main process only, are requeued and continue to
the metrics of a run that was never stopped; and a DDP job of 2 SLURM tasks (gloo) matches one
process.

Skipped, with the reason, where SLURM cannot be had (not root, no apt-get)."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster
from conftest import ROOT, fixture_dir, with_eager_lrn
from longrun import SAME_GRADIENT, checkpoint, prepare, tiny, toy, train_here

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Every job through submitit, as on a cluster, but sized for this node (conf/hydra/launcher/slurm_cpu.yaml):
# no GPU, one CPU per task.
SLURM = ["hydra/launcher=slurm_cpu"]
EPOCHS = 4  # about a second each: time to signal a job after its first last.ckpt
WORKERS = "data.num_workers=2"  # forked loader workers: they get every signal the job's step gets
JOB_TIMEOUT_S = 240  # a multirun whose jobs never report back fails the test after this long


@pytest.fixture(scope="module")
def slurm():
    yield from slurm_cluster.fixture()


@pytest.fixture(autouse=True)
def empty_queue(slurm):
    """No job of a test outlives it (a failed test must not hold the node's CPUs)."""
    yield
    jobs = slurm.jobs()
    if jobs:
        slurm.run("scancel", *jobs, check=False)
        slurm.wait_until(lambda: not slurm.jobs(), 60, "the cancelled jobs to end")


@pytest.fixture(scope="module")
def data(request):
    root = fixture_dir(request, "slurm_data")
    prepare(root / "data", "data.resize=67")  # generated once: the jobs only read it
    return root / "data"


@pytest.fixture(scope="module")
def uninterrupted(data, request) -> dict:
    """The recipe run once outside SLURM and never stopped, in this process: the reference summary."""
    return train_here(fixture_dir(request, "uninterrupted") / "run", *toy(data, EPOCHS, *SAME_GRADIENT, WORKERS))


def multirun(slurm, sweep: Path, *args: str, log: Path) -> subprocess.Popen:
    """`python train.py -m hydra/launcher=slurm ...` in the background, as a user runs it; it
    submits the jobs and waits for them."""
    env = {**slurm.env, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *with_eager_lrn(["-m", *SLURM, *args, f"hydra.sweep.dir={sweep}"])],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def finish(proc: subprocess.Popen, log: Path, sweep: Path, timeout: float = JOB_TIMEOUT_S) -> str:
    """Waits (bounded) for the multirun to return 0; its output, or an AssertionError with it and the jobs' logs."""
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = f"none: still waiting for its jobs after {timeout} s"
    out = log.read_text()
    if rc != 0:
        raise AssertionError(f"the multirun's exit status is {rc}:\n{out[-3000:]}\n--- jobs' logs:\n{job_logs(sweep)[-6000:]}")
    return out


def job_logs(sweep: Path, job: str = "*") -> str:
    """The submitit logs of the sweep's jobs (or of JOB): stdout and stderr of all tasks and restarts."""
    return "".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(sweep.glob(f".submitit/{job}/*_log.*")))


def submitit_events(sweep: Path, job: str, text: str) -> int:
    """How many times a process of JOB logged TEXT on submitit's logger (its own stdout handler
    writes each record once; Hydra's handler and submitit's stderr one repeat some)."""
    return sum(
        line.startswith("submitit ") and text in line
        for p in sweep.glob(f".submitit/{job}/*_log.out")
        for line in p.read_text(errors="replace").splitlines()
    )


def job_span(sweep: Path, job: str) -> tuple[str, str]:
    """When the job's task 0 started and ended, from submitit's first and last log lines (sortable times)."""
    log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    times = re.findall(r"^submitit \w+ \((\d{4}-[\d-]+ [\d:,]+)\)", log, re.M)
    return times[0], times[-1]


def job_ids(sweep: Path) -> list[str]:
    """The SLURM ids of the sweep's jobs (<array job>_<task>, or <job> for a sweep of one), once submitted."""
    return sorted(p.parent.name for p in sweep.glob(".submitit/*/*_submitted.pkl"))


def summaries(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))}


def metrics(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k.startswith(("train/", "val/"))}


def assert_same_metrics(got: dict, want: dict) -> None:
    # The same gradient, added up in another order (another shuffle, or two ranks): float sums
    # that agree to 1e-5; the error rates count the same right answers.
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key.endswith("loss"):
            assert got[key] == pytest.approx(value, rel=1e-5), key
        else:
            assert got[key] == value, key


@pytest.fixture(scope="module")
def signalled(slurm, data, request):
    """One multirun of two jobs of the recipe, with loader workers and ckpt_path=last. Once a job
    has written its first last.ckpt, job 0 gets submitit's signal (`scancel --signal=USR2`: what
    SLURM sends before the time limit, or a pre-empting scheduler) and job 1 `scontrol requeue`
    (SIGTERM to the job, which is started again). Returns the sweep's folder and the job ids."""
    root = fixture_dir(request, "signalled")
    sweep, log = root / "sweep", root / "multirun.log"
    proc = multirun(
        slurm,
        sweep,
        "tags=[usr2],[requeue]",
        *tiny(data, root / "unused", EPOCHS, *SAME_GRADIENT, WORKERS, "ckpt_path=last"),
        log=log,
    )
    send = {"0": lambda job: slurm.run("scancel", "--signal=USR2", job), "1": lambda job: slurm.run("scontrol", "requeue", job)}
    try:
        pending, end = dict(send), time.monotonic() + JOB_TIMEOUT_S
        while pending:  # each job is signalled as soon as its first last.ckpt is there
            for num in [n for n in pending if (sweep / n / "checkpoints" / "last.ckpt").exists()]:
                assert checkpoint(sweep / num / "checkpoints" / "last.ckpt")["epoch"] < EPOCHS - 2, (
                    f"job {num} was nearly done before it could be signalled"
                )
                pending.pop(num)(job_ids(sweep)[int(num)])
            assert proc.poll() is None, f"the multirun ended before its jobs were signalled:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < end, f"no last.ckpt from jobs {sorted(pending)} after {JOB_TIMEOUT_S} s"
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        raise
    out = finish(proc, log, sweep)
    assert "2 of 2 jobs finished" in out, out[-3000:]
    return sweep, dict(zip(("0", "1"), job_ids(sweep))), out


def test_a_two_job_multirun_runs_both_jobs_at_once_on_slurm(signalled):
    sweep, jobs, out = signalled
    assert len(jobs) == 2 and len(set(jobs.values())) == 2, jobs
    found = summaries(sweep)
    assert sorted(found) == ["0", "1"] and all(s["status"] == "finished" for s in found.values()), found
    assert [found[j]["tags"] for j in ("0", "1")] == [["usr2"], ["requeue"]]  # each job its own sweep value
    # Both at once: one CPU each on this 2-CPU node (select/cons_tres), so their run times overlap.
    (a_start, a_end), (b_start, b_end) = (job_span(sweep, job) for job in jobs.values())
    assert a_start < b_end and b_start < a_end, jobs
    # No accounting on this cluster: submitit's sacct warning is explained once, not repeated at every poll.
    assert "Bypassing sacct error" not in out and "this SLURM cluster keeps no accounting" in out, out[-3000:]


def check_resumed(sweep: Path, num: str, job: str, reference: dict) -> str:
    """Job NUM ended finished, after exactly one resume from its last.ckpt, with the reference's metrics."""
    (summary,) = [s for n, s in summaries(sweep).items() if n == num]
    last = sweep / num / "checkpoints" / "last.ckpt"
    logs = job_logs(sweep, job)
    assert summary["status"] == "finished", summary
    assert checkpoint(last)["global_step"] == EPOCHS
    assert logs.count(f"ckpt_path=last: resuming from {last}") == 1, logs[-4000:]  # one requeue, one resume
    assert "exited unexpectedly" not in logs and "killed by signal" not in logs, logs[-4000:]  # no loader worker died of it
    assert_same_metrics(metrics(summary), metrics(reference))
    return logs


def test_usr2_pre_emption_saves_requeues_and_resumes_with_loader_workers(signalled, uninterrupted):
    """submitit's signal (USR2) reaches every process of the job's step, loader workers
    included; only the main process saves, and submitit requeues the job once."""
    sweep, jobs, _ = signalled
    logs = check_resumed(sweep, "0", jobs["0"], uninterrupted)
    assert logs.count("stopped by SIGUSR2 at epoch") == 1, logs[-4000:]
    # submitit's handler ran once: in the main process, after last.ckpt was saved (not in a worker).
    assert submitit_events(sweep, jobs["0"], "Caught signal SIGUSR2") == 1, logs[-4000:]
    assert submitit_events(sweep, jobs["0"], "Requeued job") == 1, logs[-4000:]


def test_scontrol_requeue_sigterm_saves_and_resumes_with_loader_workers(signalled, uninterrupted):
    """`scontrol requeue` sends SIGTERM to every process of the job, loader workers included,
    and starts the job again: the main process saves last.ckpt, the requeued job continues."""
    sweep, jobs, _ = signalled
    logs = check_resumed(sweep, "1", jobs["1"], uninterrupted)
    assert logs.count("stopped by SIGTERM at epoch") == 1, logs[-4000:]
    # Neither Lightning's SIGTERM handler nor submitit's ran in a worker (the main process had its own).
    assert "Received SIGTERM" not in logs and submitit_events(sweep, jobs["1"], "Bypassing signal SIGTERM") == 0, logs[-4000:]


def test_ddp_job_of_two_slurm_tasks_matches_one_process(slurm, data, uninterrupted, tmp_path):
    """trainer=ddp_cpu under SLURM: one task per rank (tasks_per_node = trainer.devices), ranks
    and addresses from SLURM's environment, gloo on the CPU; the same metrics as one process."""
    sweep, log = tmp_path / "sweep", tmp_path / "multirun.log"
    proc = multirun(slurm, sweep, "trainer=ddp_cpu", *tiny(data, tmp_path / "unused", EPOCHS, *SAME_GRADIENT, WORKERS), log=log)
    finish(proc, log, sweep)
    (summary,) = summaries(sweep).values()
    logs = job_logs(sweep)
    assert summary["status"] == "finished", summary
    (job,) = job_ids(sweep)
    # One SLURM job, two tasks (submitit's log per task), and Lightning took its two ranks from them.
    assert sorted(p.name for p in sweep.glob(f".submitit/{job}/*_log.out")) == [f"{job}_0_log.out", f"{job}_1_log.out"]
    assert "MEMBER: 1/2" in logs and "MEMBER: 2/2" in logs, logs[-4000:]
    assert_same_metrics(metrics(summary), metrics(uninterrupted))
