"""What torchrun's agent tells the processes it starts, beyond the rendezvous that names the run
folder (alexnet.launch.run_id): which start of the group this is, how many restarts it allows, and
the agent's own options, so that a stopped run's resume command starts torchrun again.

An agent restarts its whole group (``--max-restarts``) when one process fails: every process
starts train.py again, in the same run folder, where only ``ckpt_path=last`` continues the run.
By default the agent keeps one TCP store for all the group's starts, and torch's process group
keys in it are the same at every start: a restarted rank can read the dead group's addresses
and fail to connect (pytorch/pytorch#135712, #167288; seen here with gloo). With
``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` and the c10d rendezvous (``--standalone`` or
``--rdzv-backend=c10d``) every start gets a store of its own.
"""

import os
import sys
from pathlib import Path

from alexnet.errors import ConfigError

RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"  # 0 at the group's first start, then 1, 2, ...
MAX_RESTARTS = "TORCHELASTIC_MAX_RESTARTS"  # --max-restarts

USE_AGENT_STORE = "TORCHELASTIC_USE_AGENT_STORE"  # "True": the workers' store is the agent's, kept across starts
OWN_STORE = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"  # "1": the c10d rendezvous gives every start a new store

UNKNOWN_OPTIONS = "<this job's torchrun options>"


def restarts() -> tuple[int, int] | None:
    """Under torchrun, (this start's restart number, ``--max-restarts``); None outside torchrun."""
    if MAX_RESTARTS not in os.environ:
        return None
    return int(os.environ.get(RESTART_COUNT, "0")), int(os.environ[MAX_RESTARTS])


def check_own_store() -> None:
    """Restarts (``--max-restarts``) only with a store of each start's own: else a ConfigError
    naming how, at the first start rather than at a failed restart."""
    started = restarts()
    if not started or not started[1] or os.environ.get(USE_AGENT_STORE) != "True":
        return
    raise ConfigError(
        f"{OWN_STORE}: torchrun --max-restarts={started[1]} keeps one TCP store for every restart of the group, "
        f"where a restarted rank can read the previous group's addresses and fail to connect; start it as "
        f"{OWN_STORE}=1 torchrun with --standalone or --rdzv-backend=c10d"
    )


def launcher() -> str:
    """How the resume command starts train.py: ``python``, or under torchrun ``torchrun`` and the
    agent's options, read from its command line (/proc: Linux), else a placeholder naming them."""
    if restarts() is None:
        return "python"
    options = agent_options(os.getppid(), sys.argv[0])
    env = f"{OWN_STORE}=1 " if os.environ.get(OWN_STORE) == "1" else ""
    return f"{env}torchrun " + (" ".join(options) if options is not None else UNKNOWN_OPTIONS)


def agent_options(agent_pid: int, script: str) -> list[str] | None:
    """The options between ``torchrun`` (or ``python -m torch.distributed.run``) and ``script`` on
    the agent's command line; None when it cannot be read or is not a torchrun command."""
    try:
        argv = Path(f"/proc/{agent_pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except (OSError, UnicodeDecodeError):
        return None
    if script not in argv:
        return None
    head = argv[: argv.index(script)]
    for i, arg in enumerate(head):
        if (arg == "torch.distributed.run" and i > 0 and head[i - 1] == "-m") or Path(arg).name == "torchrun":
            return head[i + 1 :]
    return None
