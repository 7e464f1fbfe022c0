"""One job of ``python train.py``: run it, and turn how it ended into the exit the caller expects.

A single run exits 2 on a config error and 128+signal (or the stop's own code) when stopped. In a
multirun a job that cannot go on is recorded (its summary.json) and the next job starts, since
exiting here would end the whole sweep; signals still end it. In a search (hparams_search=),
a trial stopped by a flat or diverged loss reports the chance value of its ``optimized_metric``
(alexnet.launch.search), so the search goes on.
"""

import logging
import sys

from omegaconf import DictConfig

from alexnet.exit_codes import ExitCode
from alexnet.torchrun import restarts


def run_job(cfg: DictConfig) -> float | None:
    """Returns the value a Hydra sweeper optimises: a search's ``optimized_metric``, else the validation top-1 error."""
    from alexnet.errors import traceback_wanted
    from alexnet.launch import search
    from alexnet.training.run import ConfigError, RunStopped, train

    if cfg.get("fig1"):  # experiment=fig1_relu_vs_tanh: the CIFAR-10 ReLU/tanh comparison, not AlexNet
        from alexnet.experiments.fig1 import run_from_config

        run_from_config(cfg)
        return None
    from alexnet.launch.sweeps import JobFailed

    # In a multirun a job that cannot go on is recorded (its summary.json) and the next job starts:
    # exiting here would end the whole sweep. Signals still end it.
    sweep = sweep_dir()
    started = restarts()
    if started and started[0]:  # every rank says so, in its own log
        logging.getLogger("train").warning(f"torchrun restart {started[0]} of {started[1]}: the job starts again")
    metric = None
    try:
        metric = search.check_metric(cfg)
        summary = train(cfg)
        if sweep and metric:
            return search.report_finished(cfg, metric, summary)
    except ConfigError as err:
        if traceback_wanted():
            raise
        print(f"config error: {err}", file=sys.stderr)
        if sweep:
            raise JobFailed(f"config error: {err}", sweep) from None
        sys.exit(ExitCode.CONFIG_ERROR)
    except RunStopped as stop:  # SIGTERM/SIGINT (checkpoint saved), a diverged loss, a failed checkpoint write
        rank_zero = stop.global_zero
        if rank_zero:
            print(stop, file=sys.stderr)
        if stop.then is not None:
            stop.then()  # submitit (hydra/launcher=slurm): requeue this job; it resumes from last.ckpt
        if sweep and metric and rank_zero and stop.status in search.PRUNING_STOPS:
            return search.report_stopped(cfg, metric, stop.status)
        if sweep and stop.status != "interrupted" and rank_zero:
            raise JobFailed(str(stop), sweep) from None
        # DDP ranks > 0 exit 0: Lightning's launcher kills rank 0 when a child exits non-zero.
        sys.exit(stop.exit_code if rank_zero else ExitCode.OK)
    except Exception as err:
        if not sweep:
            raise
        logging.getLogger("train").error(f"job failed: {type(err).__name__}: {err}", exc_info=err)
        raise JobFailed(f"{type(err).__name__}: {err}", sweep) from None
    return summary.get("val/top1_err")  # the value a Hydra sweeper optimises


def sweep_dir() -> str | None:
    """The multirun's folder when this job is one of a multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    return str(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None
