"""The unique part of run and sweep folder names (conf/hydra/default.yaml's ``ALEXNET_RUN_ID`` and
``ALEXNET_RUN_NAME``), shared by every process of one job.

Two runs started in the same second would otherwise share ``outputs/runs/<time>/``: on a cluster
array jobs and scripted submissions do start together. Under torchrun every rank runs train.py
itself, on nodes whose clocks and pids differ, and an elastic restart runs it again later: there
the folder's whole name is the job's identity, ``torchrun_<id>``, with no time in it, so every
rank, node and restarted group finds the same folder (and ``ckpt_path=last`` resumes in it).
"""

import os
import re

# Written by train.py only (before Hydra composes: the multirun's jobs and DDP ranks inherit it);
# read by conf/hydra/default.yaml's run and sweep folder names.
RUN_ID = "ALEXNET_RUN_ID"  # <time>_<id>
RUN_NAME = "ALEXNET_RUN_NAME"  # the whole name, no time: torchrun's jobs

# Set by torchrun's agent in every worker: the rendezvous id (--rdzv-id; a fresh uuid under
# --standalone or a one-node job without an endpoint), the same for every node and restart.
# "none" is torchrun's default --rdzv-id for a job started without one.
TORCHRUN_ID = "TORCHELASTIC_RUN_ID"


def torchrun_id() -> str | None:
    """Under torchrun, the job's identity: its rendezvous id, else (``--rdzv-id`` not given) the
    rendezvous address ``MASTER_ADDR-MASTER_PORT``; None outside torchrun."""
    rdzv_id = os.environ.get(TORCHRUN_ID)
    if rdzv_id is None:
        return None
    if rdzv_id in ("", "none"):
        rdzv_id = f"{os.environ.get('MASTER_ADDR', 'localhost')}-{os.environ.get('MASTER_PORT', '0')}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", rdzv_id)  # a folder name, and a Hydra override's value


def run_name() -> str | None:
    """The run or sweep folder's whole name when the clock must stay out of it (torchrun), else None."""
    job = torchrun_id()
    return f"torchrun_{job}" if job else None


def run_id() -> str:
    """The SLURM job (``job<id>``, or ``job<array id>_<task>`` in an array), else this process (``pid<pid>``)."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"job{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"job{os.environ['SLURM_JOB_ID']}"
    return f"pid{os.getpid()}"


def rank_overrides(job_name: str) -> list[str]:
    """Hydra overrides for a torchrun rank other than 0, which runs Hydra's main too (Lightning
    starts no processes under torchrun): no ``.hydra/`` record of its own (rank 0 writes the
    job's), and its log in ``<job>_rank<k>.log``, as Lightning's own DDP ranks do
    (alexnet.training.ddp)."""
    rank = int(os.environ.get("RANK", "0"))
    if torchrun_id() is None or rank == 0:
        return []
    return ["hydra.output_subdir=null", f"hydra.job.name={job_name}_rank{rank}"]
