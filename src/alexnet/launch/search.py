"""Hyperparameter searches (``python train.py -m hparams_search=<preset>``, conf/hparams_search/):
what each trial reports to the Optuna sweeper, and the table of trials the search ends with.

A trial reports the preset's ``optimized_metric``. A trial stopped because it cannot get
anywhere within its budget (the loss sat at ln(classes), ``callbacks.flat_start.stop``, or it
diverged) reports that metric's chance value instead, so the sampler learns that region is bad;
Hydra's Optuna sweeper has no way to report a pruned trial, so the table marks it pruned from
the trial's summary.json. Every trial's summary.json records what it reported (``trial``).
"""

import csv
import logging
import math
import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode
from alexnet.launch.sweeps import job_dirs
from alexnet.paths import RunDir

log = logging.getLogger(__name__)

# The stops a trial reports as chance: what the flat-start guard and the NaN guard call them
# (RunStopped.status), and how the table says it.
PRUNING_STOPS = {"flat_start": "flat start", "diverged": "diverged"}
# The metrics a stopped trial can be scored on: a net guessing uniformly among n classes.
CHANCE = {
    "top1_err": lambda n: 1 - 1 / n,
    "top5_err": lambda n: 1 - min(5, n) / n,
    "loss": lambda n: math.log(n),
}
TABLE_MD, TABLE_CSV = "trials.md", "trials.csv"


def check_metric(cfg: DictConfig) -> str | None:
    """``optimized_metric`` (an hparams_search preset's), checked before any work; None outside a search."""
    metric = cfg.get("optimized_metric")
    if metric is None:
        return None
    split, _, name = str(metric).partition("/")
    if split not in ("train", "val") or name not in CHANCE:
        known = ", ".join(f"{s}/{n}" for s in ("val", "train") for n in CHANCE)
        raise ConfigError(f"optimized_metric: expected one of {known}, got {metric!r}")
    return str(metric)


def chance(metric: str, num_classes: int) -> float:
    return CHANCE[metric.partition("/")[2]](num_classes)


def report_finished(cfg: DictConfig, metric: str, summary: dict) -> float:
    """A finished trial's value: the metric it measured, recorded in its summary.json."""
    value = summary.get(metric)
    if value is None:
        measured = ", ".join(k for k in summary if k.startswith(("train/", "val/"))) or "none"
        raise ConfigError(f"optimized_metric: {metric} was not measured by this run (its metrics: {measured})")
    record(cfg, {"metric": metric, "value": float(value), "pruned": None})
    return float(value)


def report_stopped(cfg: DictConfig, metric: str, status: str) -> float:
    """A trial stopped by a flat or diverged loss: the metric's chance value, recorded in its summary.json."""
    value = chance(metric, int(cfg.data.num_classes))
    record(cfg, {"metric": metric, "value": value, "pruned": status})
    log.info(f"trial pruned ({PRUNING_STOPS[status]}): reported {metric} = {value:.4g}, its chance value")
    return value


def record(cfg: DictConfig, trial: dict) -> None:
    # Here, not at the top: the sweeper's process loads this module before train.py has tuned torch.
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    run = RunDir(cfg.paths.output_dir)
    run.write_summary({**(run.read_summary() or {}), "trial": trial})


def searched_keys(config: DictConfig) -> list[str]:
    """The keys a search varies: its sweeper's params and any sweep given on the command line."""
    params = dict(config.hydra.sweeper.get("params") or {})
    overrides = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    keys = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override() and override.get_key_element() not in keys:
            keys.append(override.get_key_element())
    return keys


def trials(sweep_dir: Path, keys: list[str], metric: str, direction: str) -> list[dict]:
    """One row per trial folder, best first; trials that reported nothing (failed, stopped by a
    signal, still running) last, in their order."""
    rows = []
    for job in job_dirs(Path(sweep_dir)):
        run = RunDir(job)
        try:
            summary = run.read_summary() or {}
        except ValueError as err:
            summary = {"status": f"unreadable summary.json ({err})"}
        config = run.read_config()
        trial = summary.get("trial") or {}
        pruned = trial.get("pruned")
        if trial:
            outcome = f"pruned: {PRUNING_STOPS.get(pruned, pruned)} (chance)" if pruned else "finished"
        else:
            outcome = summary.get("status", "incomplete (no summary.json)")
        row = {"trial": job.name}
        row.update({key: OmegaConf.select(config, key) for key in keys})
        row.update({metric: trial.get("value"), "epochs": summary.get("epochs"), "outcome": outcome})
        rows.append(row)
    sign = -1 if direction == "maximize" else 1
    # Equal values (a finished trial at chance, a pruned one): the finished trial first.
    return sorted(
        rows,
        key=lambda r: (r[metric] is None, sign * (r[metric] or 0), r["outcome"] != "finished"),
    )


def formatted(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "no trials\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(formatted(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(sweep_dir: Path, rows: list[dict]) -> tuple[Path, Path]:
    md, table = Path(sweep_dir) / TABLE_MD, Path(sweep_dir) / TABLE_CSV
    md.write_text(markdown(rows))
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
    return md, table


class TrialsTable(Callback):
    """conf/hparams_search/: the search's trials, best first, into <sweep dir>/trials.md and
    trials.csv, to the console, and with logger=wandb to the sweep's W&B group."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # Before Hydra builds the sweeper, whose sampler loads optuna and its storage's schema tool,
        # alembic, which logs a line per plugin it loads: not for whoever runs a search.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        try:  # before any trial: a misspelt metric would fail every one of them
            check_metric(config)
        except ConfigError as err:
            print(f"config error: {err}", file=sys.stderr, flush=True)
            sys.exit(ExitCode.CONFIG_ERROR)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric = str(config.optimized_metric)
        direction = str(config.hydra.sweeper.direction).rsplit(".", 1)[-1]  # minimize, or Direction.minimize
        rows = trials(sweep_dir, searched_keys(config), metric, direction)
        md, table = write_table(sweep_dir, rows)
        log.info(f"trials, best first ({direction} {metric}):\n{markdown(rows)}written to {md} and {table}")
        wandb_node = (config.get("logger") or {}).get("wandb")
        if wandb_node is not None:
            from alexnet.loggers import wandb_logger

            experiment = config.hydra.runtime.choices.get("experiment")
            wandb_logger.log_search_table(wandb_node, sweep_dir, experiment, rows)


def prepare_storage(sweep_dir: str, storage: str | None, study_name: str | None) -> int:
    """Before the sweeper opens its study: the sweep folder (where a SQLite storage lives) exists,
    and the number of trials the study already holds, from where a continued search numbers its
    jobs, so trial N runs in job folder N and a rerun never writes over an earlier trial's folder."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    if storage is None or study_name is None:
        return 0
    import optuna

    studies = optuna.study.get_all_study_summaries(storage)
    return next((s.n_trials for s in studies if s.study_name == study_name), 0)
