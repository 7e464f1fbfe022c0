"""One training run from a composed config: validate, build, fit, test, summarise."""

import json
import logging
import time
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from alexnet.config import ConfigError, as_dict, build, split_fast_path, validate
from alexnet.module import LitAlexNet
from alexnet.speed import FastPath

SUMMARY = "summary.json"


def instantiate_all(cfg: DictConfig | None, key: str) -> list:
    """Callbacks and loggers: a mapping of name -> {_target_: ..., ...}; null or {} is none."""
    if not cfg:
        return []
    return [build(f"{key}.{name}", instantiate, node) for name, node in cfg.items() if node is not None]


def quiet_duplicates() -> None:
    # Hydra's root handler already prints and files Lightning's messages; its own handler doubles them.
    logging.getLogger("lightning.pytorch").handlers.clear()
    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")


def train(cfg: DictConfig) -> dict:
    validate(cfg)
    quiet_duplicates()
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    datamodule = build("data", instantiate, cfg.data)
    module = build("model", LitAlexNet, model=as_dict(cfg, "model"), **as_dict(cfg, "optim"))
    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_all(cfg.get("logger"), "logger")
    if not loggers:  # logger=none: the lr monitor has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer_args = as_dict(cfg, "trainer")
    callbacks.append(FastPath(**split_fast_path(trainer_args)))
    trainer = build("trainer", L.Trainer, **trainer_args, callbacks=callbacks, logger=loggers or False, default_root_dir=str(out))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    summary = {"status": "finished", "epochs": trainer.current_epoch, "fit_seconds": round(time.time() - start, 1)}
    summary.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))})
    if cfg.get("test") and not trainer.fast_dev_run:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        metrics = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        summary.update({k: float(v) for k, v in metrics[0].items()})
        summary["test_checkpoint"] = best
        summary["test_crops"] = datamodule.test_crops
    summary["run_dir"] = str(out)
    if trainer.is_global_zero:
        (out / SUMMARY).write_text(json.dumps(summary, indent=1))
        print_summary(summary)
    return summary


def print_summary(summary: dict) -> None:
    table = Table(title="final metrics", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key.startswith(("train/", "val/", "test/")):
            table.add_row(key, f"{100 * value:.2f}%" if key.endswith("_err") else f"{value:.4f}")
    table.add_row("epochs", str(summary["epochs"]))
    table.add_row("fit time", f"{summary['fit_seconds']:.0f} s")
    console = Console()
    console.print(table)
    console.print(f"run folder: {summary['run_dir']}")


__all__ = ["train", "ConfigError"]
