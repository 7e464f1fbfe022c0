"""Where things live: the project's root, and every file of a run folder.

Each name below is the only place that spells it; readers and writers of run folders (the
training run, its checkpoints, eval.py, the tables, figure 1, the W&B logger) go through ``RunDir``.
"""

import json
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT_RESOLVER = "alexnet.project_root"
STORE_RESOLVER = "alexnet.store_of"
# What conf/paths/default.yaml said before the resolver, kept in the run configs saved then.
OLD_PROJECT_ROOT = "${oc.env:PROJECT_ROOT}"


def project_root() -> Path:
    """The checkout this package sits in (src/alexnet/ under it: the install is an editable one)."""
    return Path(__file__).resolve().parents[2]


def store_of(root: str) -> str:
    """``${alexnet.store_of:${data.root}}``: the prepared store beside a data root, ``<root>_store``.
    Not a plain ``${data.root}_store``: a root written ``/x/`` or ``~/x`` must give ``/x_store``
    and ``<home>/x_store``, not ``/x/_store``."""
    path = Path(root).expanduser()
    return str(path.with_name(f"{path.name}_store"))


def register_resolvers() -> None:
    """``${alexnet.project_root:}``, conf/paths/default.yaml's root: the checkout of the process
    reading the config, so a saved run config resolves from any folder; ``${alexnet.store_of:...}``
    (``store_of``). A resolver is process-wide, so it is registered by whoever composes or reads a
    config (train.py, ``compose_train``, ``RunDir.read_config``), never on import; Hydra hands it
    to its launchers' job processes."""
    if not OmegaConf.has_resolver(PROJECT_ROOT_RESOLVER):
        OmegaConf.register_new_resolver(PROJECT_ROOT_RESOLVER, lambda: str(project_root()))
    if not OmegaConf.has_resolver(STORE_RESOLVER):
        OmegaConf.register_new_resolver(STORE_RESOLVER, store_of)


def shared_data() -> Path:
    """``../shared/data`` beside the checkout: the real photos the tests and benchmarks read in place."""
    return project_root().parent / "shared" / "data"


class RunDir:
    """One run folder: ``outputs/runs/<time>/`` or a multirun's ``outputs/multiruns/<time>/<job>/``."""

    SUMMARY = "summary.json"
    WANDB_ID = "wandb_id.txt"
    START = ".hydra"  # Hydra's record of a start (hydra.output_subdir): the config and its overrides
    CONFIG = f"{START}/config.yaml"
    HYDRA = f"{START}/hydra.yaml"
    CHECKPOINTS = "checkpoints"
    LAST = "last.ckpt"  # the name Lightning's ModelCheckpoint gives it (CHECKPOINT_NAME_LAST + FILE_EXTENSION)
    FIGURES = "figures"
    DUPLICATES = "duplicates.tsv"  # the byte-identical images the start-of-run data check found (alexnet.data.check)
    LOGS = "*.log"  # Hydra's log of the job (<job name>.log) and of each further DDP rank
    # What training leaves: a new start's processes write neither before all of its ranks have
    # started (rank 0 saves nothing before the others join it), unlike the START record.
    TRAINED = (SUMMARY, CHECKPOINTS)
    # A run's record, which overwrite=true removes before a run starts afresh in the folder: all
    # that a run writes here, the loggers' folders (conf/logger/*.yaml's names) and LOGS included.
    RECORD = (SUMMARY, WANDB_ID, START, CHECKPOINTS, FIGURES, DUPLICATES, "csv", "tensorboard", "wandb")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def of_checkpoint(cls, checkpoint: str | os.PathLike) -> "RunDir":
        """The run folder whose checkpoints folder holds ``checkpoint``."""
        return cls(Path(checkpoint).parent.parent)

    @property
    def summary(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def wandb_id(self) -> Path:
        return self.path / self.WANDB_ID

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def hydra(self) -> Path:
        return self.path / self.HYDRA

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / self.LAST

    @property
    def figures(self) -> Path:
        return self.path / self.FIGURES

    @property
    def duplicates(self) -> Path:
        return self.path / self.DUPLICATES

    def is_run(self) -> bool:
        return self.config.exists()

    def holds(self, names) -> list[str]:
        """Those of ``names`` (entries of the folder) that exist."""
        return [name for name in names if (self.path / name).exists()]

    def remove(self, names, logs: bool) -> list[str]:
        """Deletes ``names`` (entries of the folder, a folder with all it holds) and, when ``logs``,
        the log files; returns what was there."""
        removed = []
        for name in names:
            path = self.path / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(name)
        for log in sorted(self.path.glob(self.LOGS)) if logs else ():
            log.unlink()
            removed.append(log.name)
        return removed

    def recorded(self, path: str | os.PathLike) -> str:
        """How a run records a path: relative to its folder when it lies in it, so that a copy of
        the folder reads its own files (``resolve``); a path elsewhere stays as it is."""
        path = Path(path)
        # Lightning's ModelCheckpoint keeps its folder's real path: symbolic links resolved.
        for folder, target in ((self.path.absolute(), path.absolute()), (self.path.resolve(), path.resolve())):
            if target.is_relative_to(folder):
                return target.relative_to(folder).as_posix()
        return str(path)

    def resolve(self, recorded: str, origin: str | None) -> Path:
        """A path the run recorded (``recorded``), read in this folder. A relative one is this
        folder's. An absolute one, as summaries written before paths were relative hold, is
        this folder's too when it lay in the folder the run was made in (``origin``, its
        summary's ``run_dir``), wherever the folder is now; one elsewhere stays as it is."""
        path = Path(recorded)
        if not path.is_absolute():
            return self.path / path
        if origin and path.is_relative_to(origin):
            return self.path / path.relative_to(origin)
        return path

    def read_config(self) -> DictConfig:
        """The run's composed config, as Hydra saved it (unresolved): its paths resolve against
        this checkout, those of runs saved with the old ``${oc.env:PROJECT_ROOT}`` root too."""
        register_resolvers()
        text = self.config.read_text().replace(OLD_PROJECT_ROOT, "${" + PROJECT_ROOT_RESOLVER + ":}")
        return OmegaConf.create(text)

    def write_summary(self, summary: dict) -> None:
        """Written to a temporary name and renamed, so a reader never sees half a file."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.summary.with_name(f".{self.SUMMARY}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, self.summary)

    def read_summary(self) -> dict | None:
        """The summary, or None when the run wrote none; a corrupt file is an error naming it."""
        if not self.summary.exists():
            return None
        try:
            summary = json.loads(self.summary.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.summary}: not a valid summary ({err}); delete it or rerun the job") from None
        if not isinstance(summary, dict):
            raise ValueError(f"{self.summary}: not a valid summary (a JSON {type(summary).__name__}, not an object)")
        return summary
