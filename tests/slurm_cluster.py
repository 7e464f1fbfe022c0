"""A real one-node SLURM cluster for the tests, started and stopped by scripts/slurm/up.sh and
down.sh (no tests here). In a test module:

    import slurm_cluster

    @pytest.fixture(scope="module")
    def slurm():
        yield from slurm_cluster.fixture()

    def test_something(slurm):
        subprocess.run(["sbatch", "--wrap", "true"], env=slurm.env, check=True)

The fixture skips the tests, with up.sh's reason, where SLURM is not installed and cannot be
(not root, no apt-get, apt-get failed); any other failure to start is an error with the daemons'
logs. The cluster is always stopped again (down.sh: every daemon by the PID it recorded) and its
state removed, whatever the tests did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UP, DOWN = ROOT / "scripts" / "slurm" / "up.sh", ROOT / "scripts" / "slurm" / "down.sh"
UNAVAILABLE = 3  # up.sh's exit status when SLURM is not installed and cannot be
INSTALL_TIMEOUT_S = 600  # apt-get update + install of slurm-wlm and munge (about 10 s here)


class SlurmUnavailable(Exception):
    """SLURM is not installed and cannot be installed here; str() is the reason."""


@dataclass
class Cluster:
    state: Path  # up.sh's folder: slurm.conf, env, log/, pids/
    env: dict[str, str] = field(repr=False)  # os.environ for clients of this cluster (SLURM_CONF=...)
    up_s: float = 0.0  # how long up.sh took (install included, if it installed)

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command (sbatch, squeue, scontrol, scancel, ...) against this cluster."""
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc

    def sbatch(self, *args: str, cwd: Path | None = None) -> str:
        """Submits a batch job; returns its id."""
        proc = subprocess.run(["sbatch", "--parsable", *args], env=self.env, cwd=cwd, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise AssertionError(f"sbatch {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ...); {} once the job is forgotten
        (there is no accounting: a finished job is gone MinJobAge = 5 s after it ends)."""
        proc = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        if proc.returncode != 0:
            return {}
        return dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)

    def jobs(self) -> list[str]:
        """Ids of the jobs SLURM knows about now (pending, running, completing)."""
        return self.run("squeue", "-h", "-o", "%A").stdout.split()

    def wait_until(self, ready, timeout: float, what: str, poll: float = 0.25):
        """Polls READY() until it returns something truthy; AssertionError naming WHAT and the
        queue when TIMEOUT seconds pass first."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = ready()
            if found:
                return found
            time.sleep(poll)
        queue = self.run("squeue", "-o", "%i %j %T %r %M", check=False).stdout
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; squeue:\n{queue}")

    def logs(self, lines: int = 30) -> str:
        """The tails of the daemons' logs, for failure messages."""
        out = []
        for log in sorted((self.state / "log").glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def _client_env(env_file: Path) -> dict[str, str]:
    """os.environ without any SLURM_* of an enclosing job (pytest itself may run in one), plus
    up.sh's `export NAME=VALUE` lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export ") :].split("=", 1)
            env[name] = value
    return env


@contextmanager
def cluster(state: Path) -> Iterator[Cluster]:
    """Brings the cluster up in STATE (a new or empty folder), yields it, always brings it down.
    Raises SlurmUnavailable where SLURM cannot be had, RuntimeError where it fails to start."""
    if shutil.which("bash") is None:
        raise SlurmUnavailable("no bash to run scripts/slurm/up.sh")
    state = Path(state)
    t0 = time.monotonic()
    try:
        try:
            proc = subprocess.run(["bash", str(UP), str(state)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S + 60)
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"scripts/slurm/up.sh did not finish within {err.timeout:.0f} s") from None
        said = proc.stderr.strip().splitlines()
        if proc.returncode == UNAVAILABLE:
            raise SlurmUnavailable(
                next(
                    (s.removeprefix("slurm-up: ") for s in reversed(said) if s.startswith("slurm-up:")),
                    "scripts/slurm/up.sh: SLURM is not available",
                )
            )
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/slurm/up.sh {state} failed ({proc.returncode}):\n" + "\n".join(said[-60:]))
        yield Cluster(state=state, env=_client_env(state / "env"), up_s=time.monotonic() - t0)
    finally:
        if not (state / "pids").exists() and not (state / "slurm.conf").exists():
            if state.is_dir() and not any(state.iterdir()):
                state.rmdir()  # up.sh stopped before starting anything (SLURM unavailable)
        else:
            down = subprocess.run(["bash", str(DOWN), str(state)], capture_output=True, text=True, timeout=120)
            if down.returncode != 0:
                raise RuntimeError(f"scripts/slurm/down.sh {state} failed ({down.returncode}): {down.stderr}")


def fixture(state: Path | None = None) -> Iterator[Cluster]:
    """For a pytest fixture (`yield from slurm_cluster.fixture()`): the running cluster, or
    pytest.skip with the reason SLURM is unavailable. STATE: a new folder under /tmp by default
    (short: munge's socket path must fit in 108 bytes)."""
    import pytest

    try:
        with cluster(Path(state or tempfile.mkdtemp(prefix="alexnet-slurm-"))) as running:
            yield running
    except SlurmUnavailable as why:
        pytest.skip(f"no SLURM: {why}")
