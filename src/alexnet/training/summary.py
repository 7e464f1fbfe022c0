"""What a run was, for the tables: its preset, overrides, seed and tags, and a summary.json
even when it fails (status failed, the error), so a failed job is listed, never averaged in."""

import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from alexnet.loggers import wandb_logger
from alexnet.paths import RunDir


def run_info(cfg: DictConfig) -> dict:
    experiment, overrides = None, []
    if HydraConfig.initialized():  # absent when train() is called without Hydra's main
        hydra = HydraConfig.get()
        experiment = hydra.runtime.choices.get("experiment")
        overrides = list(hydra.overrides.task)
    return {"experiment": experiment, "overrides": overrides, "seed": cfg.get("seed"), "tags": list(cfg.get("tags") or [])}


def write_failed(cfg: DictConfig, err: BaseException) -> None:
    if rank_zero_only.rank != 0:
        return
    try:
        out = Path(cfg.paths.output_dir)
    except Exception:  # the config itself is broken: nowhere to write
        return
    summary = {
        "status": "failed",
        "error": f"{type(err).__name__}: {err}",
        "traceback": traceback.format_exception(type(err), err, err.__traceback__)[-3:],
        "run_dir": str(out),
    }
    summary = {**summary, **run_info(cfg)}
    RunDir(out).write_summary(summary)
    wandb_logger.record_failed(cfg, summary)  # logger=wandb: the failed job shows in W&B too
