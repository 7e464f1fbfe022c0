"""One training run from a composed config: validate, build, fit, test, summarise."""

import signal
import warnings
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from alexnet import folder_reuse
from alexnet.callbacks import figures
from alexnet.callbacks.stopping import EnoughTrainingData, GracefulStop, resume_hint, stopped_while_testing
from alexnet.checkpointing.callbacks import ClassIdentity, FitRecord
from alexnet.checkpointing.checks import check_matches
from alexnet.checkpointing.io import AtomicCheckpointIO, CheckpointWriteError, load
from alexnet.checkpointing.resolve import last_checkpoint_path, latest_good_checkpoint, resolve
from alexnet.errors import ConfigError, RunStopped, StoreUnreachable, as_config_error
from alexnet.exit_codes import ExitCode
from alexnet.loggers import wandb_logger
from alexnet.loggers.config_tree import print_config_tree
from alexnet.loggers.console import one_console
from alexnet.paths import RunDir
from alexnet.training import ddp, finetune
from alexnet.training import summary as run_summary
from alexnet.training.config import as_dict, build, trainer_node, validate
from alexnet.training.module import LitAlexNet
from alexnet.training.optim import PaperSGD


def instantiate_all(cfg: DictConfig | None, key: str) -> list:
    """Callbacks and loggers: a mapping of name -> {_target_: ..., ...}; null or {} is none."""
    if not cfg:
        return []
    return [build(f"{key}.{name}", instantiate, node) for name, node in cfg.items() if node is not None]


def quiet_duplicates() -> None:
    one_console()  # Lightning's messages once, through Hydra's handlers; no advertisements
    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")
    # A streamed training split's length is exact: each loader worker reads its own part (alexnet.data.stream).
    warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


def train(cfg: DictConfig) -> dict:
    check_folder(cfg)  # first: a refused run writes no summary.json over the earlier run's
    with ddp.job_scope():  # a multirun's next job starts with a clean DDP environment
        try:
            return run(cfg)
        except Exception as err:  # summary.json says failed (RunStopped writes its own)
            if not isinstance(err, RunStopped):
                run_summary.write_failed(cfg, err)
            raise


def check_folder(cfg: DictConfig) -> None:
    """An earlier run's summary.json or checkpoints in this run's folder, which this run does not
    continue: refused, or removed under overwrite=true (alexnet.folder_reuse). train.py checked the
    folder before Hydra wrote into it; this is for the starts that come without that check (a job
    submitit requeues, a run in the tests' process). This start's .hydra/ record and log stay."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    clear = rank_zero_only.rank == 0  # Lightning's further DDP ranks and torchrun's leave it to rank 0
    folder_reuse.check_run(cfg, key, Path(cfg.paths.output_dir), RunDir.TRAINED, clear, keep=(RunDir.START,), logs=False)


def num_classes(datamodule) -> int:
    """data.num_classes: counted from the class folders, the store or the devkit (given, setup checks it)."""
    try:
        return datamodule.resolve_num_classes()
    except (FileNotFoundError, ValueError) as err:  # the data module's: they name data.root, data.<key>
        config = as_config_error(err)
        if config is None:
            raise
        raise config from None


def unwrapped(err: Exception) -> str:
    """An error's own message: a loader worker's comes back as "Caught X in DataLoader worker ...
    Original Traceback ...", its own message on the last line."""
    text = str(err).strip()
    if text.startswith("Caught "):
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


def run(cfg: DictConfig) -> dict:
    validate(cfg)
    quiet_duplicates()
    if cfg.extras.print_config:
        print_config_tree(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    datamodule = build("data", instantiate, cfg.data)
    try:
        return fit_and_test(cfg, datamodule, out)
    finally:
        # Loader workers ignore SIGTERM (alexnet.data.workers), so a persistent one left running by a
        # run that stopped mid-validation (Lightning then tears down only the validation loop) would
        # block this process's exit: multiprocessing's exit handler terminates and joins every child.
        datamodule.close_loaders()


def fit_and_test(cfg: DictConfig, datamodule, out: Path) -> dict:
    if cfg.data.get("num_classes", 0) is None:  # null: counted now; model.num_classes follows by interpolation
        cfg.data.num_classes = num_classes(datamodule)
    build("optim", PaperSGD, **as_dict(cfg, "optim"))  # its value errors are reported under optim.
    module = build(
        "model", LitAlexNet, model=as_dict(cfg, "model"), optim=as_dict(cfg, "optim"), test_crops=datamodule.test_crops
    )
    pretrained = finetune.init_from(cfg, module)  # the "*" models' fine-tuning: all but fc8 from init_from
    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_all(cfg.get("logger"), "logger")
    if not loggers:  # logger=none: the lr monitor has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks.append(EnoughTrainingData())  # a training split smaller than one batch: stop before any work
    identity = ClassIdentity()  # the classes go into every checkpoint; those this run starts from are checked
    callbacks.append(identity)
    record = FitRecord()  # the fit time and metrics of every session so far, carried in the checkpoints
    callbacks.append(record)
    ddp.use_job_command_for_ranks()
    trainer_args, profiler = trainer_node(cfg)
    if profiler is not None:
        trainer_args["profiler"] = build("trainer.profiler", instantiate, profiler)
    trainer = build(
        "trainer",
        L.Trainer,
        **trainer_args,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(out),
        plugins=[AtomicCheckpointIO()],
    )
    ddp.check_world_size(trainer)  # torchrun: its processes, not Lightning's, make the world
    ckpt_path = resolve(cfg.get("ckpt_path"), last_checkpoint_path(trainer).parent)
    if ckpt_path:  # fail now, naming the file, rather than deep inside Lightning's restore
        resumed = load(ckpt_path)
        check_matches(ckpt_path, resumed, module, as_dict(cfg, "model"))
        identity.expect("ckpt_path", ckpt_path, resumed, strict=True)
    if pretrained:  # fine-tuning onto other classes is the design (fc8 is new): recorded, not refused
        identity.expect(
            "init_from",
            pretrained["checkpoint"],
            load(pretrained["checkpoint"]),
            strict=False,
            report=pretrained,
        )
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except (SIGTERMException, RunStopped) as err:
        raise stopped(cfg, trainer, err, out) from None
    except CheckpointWriteError as err:  # full disk: the previous checkpoints are kept
        good = latest_good_checkpoint(trainer)
        failed = RunStopped(f"{err.strerror}\n{resume_hint(trainer)}", "failed", ExitCode.FAILED, good)
        raise stopped(cfg, trainer, failed, out) from None
    except StoreUnreachable as err:  # a URL store stopped answering: the checkpoints written so far are kept
        good = latest_good_checkpoint(trainer)
        failed = RunStopped(f"{unwrapped(err)}\n{resume_hint(trainer)}", "failed", ExitCode.FAILED, good)
        raise stopped(cfg, trainer, failed, out) from None
    except (FileNotFoundError, ValueError) as err:  # the data module's: they name data.root, data.<key>
        config = as_config_error(err)
        if config is None:
            raise
        raise config from None
    if trainer.global_step == 0 and trainer.max_steps != 0 and trainer.max_epochs != 0:
        # Lightning returns from a fit without batches as from a finished one; a run that trained
        # nothing must never be counted as finished (summary.json says failed).
        raise ConfigError(
            f"trainer: no training step was taken (no training batches: trainer.limit_train_batches="
            f"{cfg.trainer.get('limit_train_batches', 1.0)}, data.batch_size={cfg.data.get('batch_size')}); "
            "the run is not finished"
        )
    summary = {"status": "finished", "epochs": trainer.current_epoch, "fit_seconds": round(record.fit_seconds(), 1)}
    summary.update(record.metrics())
    if cfg.get("test") and not trainer.fast_dev_run:
        tested = tested_checkpoint(cfg, trainer)
        try:
            metrics = trainer.test(module, datamodule=datamodule, ckpt_path=tested["test_checkpoint"] or None, verbose=False)
        except (SIGTERMException, RunStopped) as err:  # fitting had finished: its checkpoints are complete
            raise stopped(cfg, trainer, err, out) from None
        summary.update({k: float(v) for k, v in metrics[0].items()})
        summary.update(tested)
        if tested["test_checkpoint"]:  # relative to the run folder: a copy of the folder tests its own file
            summary["test_checkpoint"] = RunDir(out).recorded(tested["test_checkpoint"])
        summary["test_crops"] = datamodule.test_crops
    summary.update(datamodule.data_summary())  # cross-split duplicates: the tables mark the test error
    summary["run_dir"] = str(out)  # where the run was made; the paths above are relative to the folder
    summary.update(run_summary.run_info(cfg))  # experiment, overrides, seed, tags: what the tables group by
    if pretrained:
        summary["init_from"] = pretrained
    if figures.drawn(trainer) is not None:  # figures 3, 4: drawn by callbacks.figures while the loggers were open
        summary["figures"] = [RunDir(out).recorded(path) for path in figures.drawn(trainer)]
    if trainer.is_global_zero:
        RunDir(out).write_summary(summary)
        print_summary(summary)
    # W&B: final numbers, the checkpoints and data as artifacts, and close the run before the next job
    wandb_logger.finish(loggers, summary, trainer=trainer, cfg=cfg)
    return summary


def tested_checkpoint(cfg: DictConfig, trainer: L.Trainer) -> dict:
    """Which checkpoint the test scores (``test_checkpoint``: best or last) and on which split.

    The paper picks none: it trains "roughly 90 cycles" and reports that net, so its presets test
    ``last``. ``best`` is the checkpoint with the lowest val/top1_err; tested on that same split
    (``data.val_split == data.test_split``, ILSVRC-2012's val) its error is biased low, and the
    summary says so (``selected_on_test_split``), as the tables do."""
    callback = trainer.checkpoint_callback
    paths = {
        "best": callback.best_model_path if callback else "",
        "last": callback.last_model_path if callback else "",
    }
    which = cfg.test_checkpoint if paths[cfg.test_checkpoint] else "last"  # no best file: the weights fitting ended with
    data = cfg.data
    return {
        "test_checkpoint": paths[which],  # the file ('' : the weights in memory when fitting ended)
        "test_checkpoint_choice": which,
        "test_split": data.get("test_split"),
        "selected_on_test_split": which == "best" and data.get("val_split") == data.get("test_split"),
    }


def stopped(cfg: DictConfig, trainer: L.Trainer, err: BaseException, out: Path) -> RunStopped:
    """SIGTERM/SIGINT (checkpoint saved by GracefulStop; while testing, the one tested) or a non-finite
    loss: record it in summary.json."""
    if isinstance(err, RunStopped):
        stop = err
    else:
        graceful = [c for c in trainer.callbacks if isinstance(c, GracefulStop)]
        if graceful:
            stop = graceful[0].stopped(trainer)
        elif trainer.state.fn == "test":  # Lightning's own SIGTERM handling: fitting had finished
            stop = stopped_while_testing(trainer, signal.SIGTERM)
        else:
            message = "stopped by SIGTERM (callbacks.graceful_stop is off: nothing saved)"
            stop = RunStopped(message, "interrupted", ExitCode.TERMINATED, None)
    summary = {
        "status": stop.status,
        "message": str(stop),
        "checkpoint": stop.checkpoint and RunDir(out).recorded(stop.checkpoint),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "run_dir": str(out),
        **run_summary.run_info(cfg),
    }
    if trainer.is_global_zero:
        RunDir(out).write_summary(summary)
    # W&B: the stop's status, an interrupted run's last.ckpt as an artifact, and the run closed with the stop's code
    wandb_logger.finish(trainer.loggers, summary, trainer=trainer, cfg=cfg, exit_code=stop.exit_code)
    stop.global_zero = trainer.is_global_zero
    return stop


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


__all__ = ["train", "ConfigError", "RunStopped"]
