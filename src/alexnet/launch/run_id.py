"""The unique part of run and sweep folder names (conf/hydra/default.yaml's ``ALEXNET_RUN_ID``).

Two runs started in the same second would otherwise share ``outputs/runs/<time>/``: on a cluster
array jobs and scripted submissions do start together.
"""

import os

# Written by train.py only (before Hydra composes: the multirun's jobs and DDP ranks inherit it);
# read by conf/hydra/default.yaml's run and sweep folder names.
RUN_ID = "ALEXNET_RUN_ID"


def run_id() -> str:
    """The SLURM job (``job<id>``, or ``job<array id>_<task>`` in an array), else this process (``pid<pid>``)."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"job{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"job{os.environ['SLURM_JOB_ID']}"
    return f"pid{os.getpid()}"
