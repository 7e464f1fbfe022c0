"""Lightning DDP under Hydra: one run folder per job (not per rank), and multiruns that work.

Lightning's DDP launcher starts ranks 1..N-1 by re-running the script. Its Hydra support re-runs
``sys.argv`` with ``hydra.run.dir`` pinned, which breaks in two cases: in a multirun ``sys.argv``
holds ``-m`` and the whole sweep (each child would start a sweep of its own), and under the
submitit launcher the script is submitit's job runner, not train.py. Here a child runs train.py
with the job's own overrides in the job's own folder. And after a DDP job the launching process
keeps the DDP environment (LOCAL_RANK, MASTER_PORT, ...) and the process group; the next job of a
multirun would take those as "processes already started for me" and wait forever, so
``job_scope`` puts them back as they were. Under torchrun Lightning starts no process (it detects
TorchElastic): every rank runs train.py, which names the one folder (alexnet.launch.run_id); here
only the number of processes is checked against the trainer's.
"""

import contextlib
import os
import sys

import torch
from lightning.fabric.plugins.environments import TorchElasticEnvironment

from alexnet.errors import ConfigError
from alexnet.lightning_private import set_ddp_child_command
from alexnet.paths import project_root

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "RANK")


def child_command(local_rank: int) -> tuple[list[str], str]:
    """The command line of a rank>0 process: this job's overrides, in this job's folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hydra = HydraConfig.get()
    script = project_root() / "train.py"
    command = [sys.executable, str(script), f"--config-name={hydra.job.config_name}", *hydra.overrides.task]
    # output_subdir=null: only rank 0 writes the job's .hydra/ record.
    command += [
        f'hydra.run.dir="{hydra.runtime.output_dir}"',
        f"hydra.job.name={hydra.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def use_job_command_for_ranks() -> None:
    set_ddp_child_command(child_command)


def check_world_size(trainer) -> None:
    """Under torchrun the processes exist before Lightning: ``trainer.devices`` x ``trainer.num_nodes``
    must be their number. Lightning finds a mismatch only inside ``fit``, as a traceback on every rank."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if not isinstance(environment, TorchElasticEnvironment):
        return
    if trainer.num_devices * trainer.num_nodes != environment.world_size():
        raise ConfigError(
            f"trainer.devices: {trainer.num_devices} per node x trainer.num_nodes={trainer.num_nodes} is not "
            f"torchrun's world size {environment.world_size()} (--nnodes x --nproc_per_node)"
        )


@contextlib.contextmanager
def job_scope():
    """Leaves the process as it found it: DDP environment variables and no process group.

    Under torchrun the group is kept for the next job of a multirun (Lightning takes an existing
    one): its ranks and store are torchrun's, and a second group on that store finds the first
    one's stale addresses and fails to connect."""
    saved = {key: os.environ.get(key) for key in DDP_ENV}
    started = torch.distributed.is_available() and torch.distributed.is_initialized()
    try:
        yield
    finally:
        torchrun = TorchElasticEnvironment.detect()
        if not (started or torchrun) and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
