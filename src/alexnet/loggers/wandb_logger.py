"""Weights & Biases tracking, offline-first: `logger=wandb` builds the logger here, `finish` closes the run.

The mode is chosen per run: online with an API key and a reachable server, otherwise offline
with one notice and the `wandb sync` command; `logger.wandb.mode=online|offline|disabled`
overrides the choice. Every job of a Hydra multirun is its own W&B run, grouped by sweep and
named after its overrides (`no_lrn-seed3`). The run id is kept in `<run_dir>/wandb_id.txt` so
that a run resumed from its checkpoint (`ckpt_path=...`) continues the same W&B run.

Checkpoints and the dataset become artifacts at the run's end, online and offline alike, by
``alexnet.loggers.wandb_artifacts`` (``logger.wandb.log_model``; Lightning's own log_model is never
passed on: it would upload on every checkpoint save, and only online). eval.py and predict.py take
a checkpoint back by reference, ``wandb-artifact://entity/project/name:version`` (``fetch_checkpoint``).

No start-method setting for Hydra: wandb 0.31 has none (WANDB_START_METHOD is gone); its work runs
in the separate wandb-core process, and a multirun only needs each job's run closed (`finish`).
"""

import logging
import netrc
import os
import platform
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode
from alexnet.loggers import wandb_artifacts
from alexnet.overrides import is_logistics, within
from alexnet.paths import RunDir, project_root

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
ID_FILE = RunDir.WANDB_ID
# Besides the logistics, a name leaves out the budget and the hardware (trainer.*, every callback, the
# test phase, debug recipes): it says what the run tests, not how long or where.
NOT_IN_NAME = ("trainer", "callbacks", "test", "debug")
ARTIFACT_SCHEME = "wandb-artifact://"


class TrackedWandbLogger(WandbLogger):
    """Lightning's WandbLogger that also remembers the best validation errors for the run summary,
    and whether the run's checkpoints become artifacts at its end (``log_artifacts``)."""

    def __init__(self, *args, mode: str, log_artifacts: bool, **kwargs):
        super().__init__(*args, mode=mode, log_model=False, **kwargs)
        self.mode = mode
        self.log_artifacts = log_artifacts
        self.best: dict = {}
        self.started = time.time()

    def log_metrics(self, metrics, step=None):
        err = metrics.get("val/top1_err")
        if err is not None and ("val/top1_err" not in self.best or err < self.best["val/top1_err"]):
            self.best = {k: float(metrics[k]) for k in ("val/top1_err", "val/top5_err") if k in metrics}
            self.best["epoch"] = int(metrics.get("epoch", -1))
        super().log_metrics(metrics, step)


def config_error(message: str):
    # Hydra's instantiate wraps any Exception in its own, which would bury this message under a
    # traceback; SystemExit passes through, like train.py's handling of ConfigError.
    print(f"config error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(ExitCode.CONFIG_ERROR)


def wandb_logger(
    *,
    mode: str,
    project: str,
    entity: str | None,
    name: str | None,
    group: str | None,
    job_type: str | None,
    tags: list[str],
    log_model: bool,
    save_dir: str,
    ckpt_path: str | None,
    **kwargs,
) -> WandbLogger:
    """The `logger.wandb` node: a WandbLogger with mode, name, group and resume id filled in."""
    import wandb

    if mode not in MODES:
        config_error(f"logger.wandb.mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if wandb.run is not None:  # left open by a failed earlier job of this multirun: never log into it
        wandb.finish(exit_code=1)
    chosen, reason = choose_mode(mode)
    hydra = hydra_job()
    run_id = stored_id(Path(save_dir), ckpt_path) if chosen != "disabled" else None
    if run_id:
        log.info(f"W&B: resuming run {run_id} (from {ID_FILE} of the run being resumed)")
    logger = TrackedWandbLogger(
        project=project,
        entity=entity,
        save_dir=save_dir,
        id=run_id,
        mode=chosen,
        tags=run_tags(tags, hydra),
        name=name or (run_name(hydra) if hydra else None),
        group=group or (sweep_group(hydra) if hydra else None),
        job_type=job_type or (hydra.runtime.choices.get("experiment") if hydra else None) or "train",
        log_artifacts=log_model,
        # Offline, wandb's own banner repeats what our one-line notice says. The commit is the
        # project's, wherever the run folder is (wandb would look for a repository there).
        settings=wandb.Settings(silent=chosen == "offline", **git_settings()),
        **kwargs,
    )
    if chosen == "disabled" or rank_zero_only.rank != 0:
        return logger
    run = logger.experiment  # start now: a failure shows before training, and the id can be stored
    (Path(save_dir) / ID_FILE).write_text(run.id + "\n")
    run.config.update(
        {"system": system_info(), "overrides": list(hydra.overrides.task) if hydra else sys.argv[1:]}, allow_val_change=True
    )
    if chosen == "offline":
        log.warning(f"W&B offline ({reason}); upload later with: wandb sync {run.settings.sync_dir}")
    return logger


def choose_mode(mode: str) -> tuple[str, str]:
    """(mode for wandb.init, why): explicit config wins, then WANDB_MODE, then key and network."""
    import wandb

    said = f"logger.wandb.mode={mode}"
    if mode == "auto" and os.environ.get("WANDB_MODE"):  # wandb's own switch, as its users expect
        said = f"WANDB_MODE={os.environ['WANDB_MODE']}"
        mode = {"dryrun": "offline", "run": "online"}.get(os.environ["WANDB_MODE"], os.environ["WANDB_MODE"])
        if mode not in MODES[1:]:
            config_error(f"{said} is not one of online, offline, disabled (unset it for logger.wandb.mode=auto)")
    if mode in ("offline", "disabled"):
        return mode, said
    # Checked before wandb.init, which would prompt for a key or wait out its 90 s timeout.
    url = os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url
    if not has_api_key(url):
        if mode == "online":
            config_error(
                f"{said} but no W&B API key was found: run `wandb login` (or set WANDB_API_KEY), "
                "or use logger.wandb.mode=offline and `wandb sync` later"
            )
        return "offline", "no API key: `wandb login` to go online"
    if not reachable(url):
        if mode == "online":
            config_error(
                f"{said} but the W&B server {url} cannot be reached: use logger.wandb.mode=offline and `wandb sync` later"
            )
        return "offline", f"{url} unreachable"
    return "online", "API key and network"


def has_api_key(url: str) -> bool:
    """WANDB_API_KEY, an identity token, or a `wandb login` entry in .netrc for the server's host.

    Read here rather than with wandb.login(prompt=False), which asks the server for the user name.
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(urlparse(url).hostname or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Can a TCP connection to the server (or the proxy in between) open within `timeout`?"""
    parts = urlparse(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def stored_id(run_dir: Path, ckpt_path) -> str | None:
    """The W&B run id of the run being resumed: from its run folder, or beside its checkpoint."""
    if not ckpt_path:
        return None
    ckpt = Path(str(ckpt_path))
    for folder in (run_dir, ckpt.parent, RunDir.of_checkpoint(ckpt).path):
        if (folder / ID_FILE).is_file():
            return (folder / ID_FILE).read_text().strip() or None
    return None


def hydra_job():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name(hydra) -> str | None:
    """What this job changes, from its overrides: model.lrn=false seed=3 -> no_lrn-seed3."""
    choices = hydra.runtime.choices
    parts = []
    for override in hydra.overrides.task:
        key, _, value = override.lstrip("+~").partition("=")
        if is_logistics(override) or within(key, NOT_IN_NAME):
            continue
        value = re.sub(r"[^\w.,-]", "", value)
        leaf = key.rsplit(".", 1)[-1]
        if key in choices:  # a config group: model=alexnet_1gpu -> alexnet_1gpu
            parts.append(value)
        elif value.lower() in ("true", "false"):
            parts.append(leaf if value.lower() == "true" else f"no_{leaf}")
        elif is_number(value):
            parts.append(f"{leaf}{value}")
        else:
            parts.append(f"{leaf}_{value}")
    return "-".join(parts)[:128] or None  # None: wandb picks a name


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def run_tags(tags: list[str], hydra) -> list[str]:
    """The preset's tags (logger.wandb.tags, i.e. ${tags}), then the dataset's name and the sweep's
    group, so a dashboard can filter by either without knowing the config."""
    found = list(tags or [])
    if hydra:
        found += [hydra.runtime.choices.get("data"), sweep_group(hydra)]
    return list(dict.fromkeys(t for t in found if t))


def sweep_group(hydra) -> str | None:
    """One group per multirun: the experiment and the sweep folder's name (a timestamp by default)."""
    from hydra.types import RunMode

    if hydra.mode != RunMode.MULTIRUN:
        return None
    sweep = Path(hydra.runtime.output_dir).parent  # <sweep dir>/<job number>
    return group_of_sweep(sweep, hydra.runtime.choices.get("experiment"))


def group_of_sweep(sweep_dir: Path, experiment: str | None) -> str:
    return f"{experiment}-{sweep_dir.name}" if experiment else sweep_dir.name


def git_settings() -> dict:
    root = project_root()
    return {"git_root": str(root)} if (root / ".git").exists() else {"disable_git": True}


def system_info() -> dict:
    import lightning
    import torch

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    return {
        "git_commit": commit or None,
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "lightning": lightning.__version__,
        "host": socket.gethostname(),
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or [platform.processor() or "cpu"],
    }


def finish(loggers: list, summary: dict, *, trainer, cfg, exit_code: int = 0) -> None:
    """The final numbers into the W&B run summary, the artifacts (``log_model``: the dataset, and the
    best and last checkpoints of a finished run, the last of an interrupted one), then close the run
    so the next Hydra job gets its own. ``exit_code``: a stopped run's (W&B marks it failed)."""
    ours = [logger for logger in loggers if isinstance(logger, TrackedWandbLogger)]
    if not ours:  # no W&B in this run: not even the import
        return
    import wandb

    online = []
    for logger in ours:
        if logger.mode == "disabled" or rank_zero_only.rank != 0:
            continue
        run = logger.experiment
        run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        run.summary.update({f"best/{k.replace('/', '_')}": v for k, v in logger.best.items()})
        run.summary["wall_seconds"] = round(time.time() - logger.started, 1)
        if summary.get("status") == "interrupted":
            run.mark_preempting()  # W&B's own mark: preempted, not crashed
        if logger.log_artifacts:
            try:
                logged = wandb_artifacts.log_run_artifacts(run, trainer=trainer, cfg=cfg, summary=summary)
                log.info(f"W&B artifacts of run {run.id}: {', '.join(logged) or 'none'}")
            except Exception as err:  # the run itself is done and recorded: its artifacts are not worth failing it
                log.warning(f"W&B: the artifacts of run {run.id} were not logged ({type(err).__name__}: {err})")
        if run.settings.mode == "offline":
            log.info(f"W&B run {run.id} saved offline; upload it with: wandb sync {run.settings.sync_dir}")
        else:
            online.append(run)
    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)
    for run in online:  # uploaded: finish waits for the uploads
        wandb_artifacts.remove_files(run)


def record_failed(cfg, summary: dict) -> None:
    """A failed run in W&B, when ``logger.wandb`` is on: the error into the run its logger started,
    or, for a run that failed before its logger was made (a config error), a run of its own with
    the overrides and the error, so that a sweep's failed jobs show in its group beside the others.
    Never raises: the failure being recorded is the one to report."""
    try:
        node = (cfg.get("logger") or {}).get("wandb")
    except Exception:  # the config itself is broken
        return
    if not node or rank_zero_only.rank != 0:
        return
    try:
        import wandb

        run = wandb.run
        if run is None:
            hydra = hydra_job()
            experiment = hydra.runtime.choices.get("experiment") if hydra else None
            run = run_of_its_own(
                node,
                save_dir=Path(str(node.get("save_dir") or ".")),
                name=node.get("name") or (run_name(hydra) if hydra else None),
                group=node.get("group") or (sweep_group(hydra) if hydra else None),
                job_type=node.get("job_type") or experiment or "train",
                tags=run_tags(node.get("tags"), hydra),
                config={"overrides": list(hydra.overrides.task) if hydra else sys.argv[1:]},
            )
            if run is None:
                return
        run.summary.update({"status": summary.get("status", "failed"), "error": summary.get("error", "")})
        wandb.finish(exit_code=1)
    except (Exception, SystemExit) as err:  # config_error's SystemExit included: a bad wandb node has its own message
        log.warning(f"W&B: the failure was not recorded ({type(err).__name__}: {err})")


def log_search_table(node, sweep_dir: Path, experiment: str | None, rows: list[dict]) -> None:
    """A search's trials, best first (alexnet.launch.search), as a table in a run of its own,
    ``trials``, in the sweep's group beside its trials' runs. Never raises: the search is over,
    and its table is in the sweep folder whatever happens here."""
    try:
        import wandb

        if wandb.run is not None:  # left open by a failed last trial: never log into it
            wandb.finish(exit_code=1)
        run = run_of_its_own(
            node,
            save_dir=Path(sweep_dir),
            name="trials",
            group=node.get("group") or group_of_sweep(Path(sweep_dir), experiment),
            job_type="search",
            tags=[*(node.get("tags") or []), "search"],
            config={"sweep_dir": str(sweep_dir)},
        )
        if run is None:
            return
        columns = list(rows[0]) if rows else ["trial"]
        run.log({"trials": wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])})
        if rows:
            run.summary.update({f"best/{k}": v for k, v in rows[0].items() if isinstance(v, (int, float, str))})
        offline = run.settings.mode == "offline"
        sync_dir = run.settings.sync_dir
        wandb.finish()
        if offline:
            log.info(f"W&B: the table of trials saved offline; upload it with: wandb sync {sync_dir}")
    except (Exception, SystemExit) as err:
        log.warning(f"W&B: the table of trials was not logged ({type(err).__name__}: {err})")


def run_of_its_own(node, *, save_dir: Path, name: str | None, group: str | None, job_type: str, tags: list[str], config: dict):
    """A W&B run outside Lightning's logger, in the mode the ``logger.wandb`` node chooses; None when disabled."""
    import wandb

    mode, _ = choose_mode(str(node.get("mode", "auto")))
    if mode == "disabled":
        return None
    save_dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=node.get("project"),
        entity=node.get("entity"),
        dir=str(save_dir),
        mode=mode,
        name=name,
        group=group,
        job_type=job_type,
        tags=tags,
        settings=wandb.Settings(silent=True, **git_settings()),
        config=config,
    )


def fetch_checkpoint(reference: str) -> Path:
    """The .ckpt of a ``wandb-artifact://entity/project/name:version`` reference (eval.py, predict.py),
    downloaded into ``<folder>/<name>:<version>`` (folder: W&B's $WANDB_ARTIFACT_DIR when set, else
    outputs/artifacts/ rather than W&B's ./artifacts of whatever folder the command ran in), with the
    run's .hydra/config.yaml beside its checkpoints/ folder: a run folder. Offline (WANDB_MODE, no
    API key, an unreachable server) a ConfigError names the reference and how to fetch it elsewhere."""
    import wandb

    path = reference[len(ARTIFACT_SCHEME) :].strip("/")
    if not path:
        raise ConfigError(f"{reference}: no artifact named (expected {ARTIFACT_SCHEME}entity/project/name:version)")
    mode, reason = choose_mode("auto")
    if mode != "online":
        raise ConfigError(
            f"{reference}: W&B is offline here ({reason}), so the artifact cannot be downloaded; on a machine "
            f"with network run `wandb artifact get {path} --root DIR`, then pass the .ckpt in DIR/checkpoints/"
        )
    try:
        artifact = wandb.Api(timeout=30).artifact(path, type="model")
        folder = Path(os.environ.get("WANDB_ARTIFACT_DIR") or project_root() / "outputs" / "artifacts")
        # skip_cache: no second copy of each checkpoint in W&B's cache (~/.cache/wandb)
        root = Path(artifact.download(root=str(folder / artifact.source_name), skip_cache=True))
    except (wandb.errors.Error, ValueError, OSError) as err:
        raise ConfigError(f"{reference}: the artifact could not be fetched ({str(err).strip().splitlines()[0]})") from None
    found = sorted(root.rglob("*.ckpt"))
    if len(found) != 1:
        raise ConfigError(f"{reference}: expected one .ckpt in the artifact, found {len(found)} in {root}")
    return found[0]
