"""hydra/launcher=slurm in the submitting process: submitit's sacct warnings on a cluster without
accounting.

submitit's driver asks ``sacct`` for its jobs' states every few seconds and, when sacct fails,
logs ``Bypassing sacct error ..., status may be inaccurate`` at WARNING on its ``submitit``
logger, every time (three copies each: its own stdout and stderr handlers and Hydra's). On a
cluster that keeps no accounting (``AccountingStorageType=accounting_storage/none``, as on the
tests' one-node cluster, scripts/slurm/up.sh) sacct can never answer, and nothing is wrong:
submitit still learns that a job ended from the job's result file, which is what it waits for.
There the first such warning becomes one INFO line saying so and the rest are dropped. Where
the cluster does keep accounting, a failing sacct means something (slurmdbd down, say) and the
warnings stay. sacct itself still prints ``Slurm accounting storage is disabled`` to stderr on
each poll: that line is sacct's own, outside Python's logging.

Wired in conf/hydra/default.yaml as a Hydra callback; it acts only for the SLURM launcher.
"""

import logging
import subprocess

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SACCT_ERROR = "Bypassing sacct error"


def accounting_disabled(timeout_s: float = 10) -> bool | None:
    """True when the cluster's slurm.conf says AccountingStorageType=accounting_storage/none,
    False when it names another plugin, None when scontrol cannot tell."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=timeout_s).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() in ("accounting_storage/none", "(null)", "")
    return None


class SacctErrorFilter(logging.Filter):
    """On the ``submitit`` logger: sacct errors on a cluster without accounting, explained once."""

    def __init__(self) -> None:
        super().__init__()
        self.disabled: bool | None = None  # asked once, at the first sacct error
        self.explained = False

    def filter(self, record: logging.LogRecord) -> bool:
        if SACCT_ERROR not in str(record.msg):
            return True
        if self.disabled is None:
            self.disabled = bool(accounting_disabled())
        if not self.disabled:
            return True  # accounting exists, so sacct failing is news: submitit's warning stays
        if self.explained:
            return False
        self.explained = True
        record.msg = (
            "this SLURM cluster keeps no accounting (AccountingStorageType=accounting_storage/none), so sacct "
            "cannot report job states to submitit; it tells that a job ended from the job's result file "
            "instead. submitit's warnings about it are not repeated (alexnet.launch.slurm)"
        )
        record.args = ()
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


class QuietSacct(Callback):
    """Installs ``SacctErrorFilter`` on the ``submitit`` logger when the sweep's launcher is SLURM's.
    (A logger filter survives submitit's own ``logging.config.dictConfig`` at import.)"""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
        if not target.endswith("SlurmLauncher"):
            return
        submitit_log = logging.getLogger("submitit")
        if not any(isinstance(f, SacctErrorFilter) for f in submitit_log.filters):
            submitit_log.addFilter(SacctErrorFilter())
