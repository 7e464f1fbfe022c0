"""A run's checkpoints and dataset as W&B artifacts (``logger.wandb.log_model``). eval.py and
predict.py take one back by reference (``wandb_logger.fetch_checkpoint``).

One owner, online and offline alike: at the end of a run (``wandb_logger.finish``) rank zero logs
what it trained on and what it made. Lightning's own ``log_model`` is never passed on: online it
uploads on every checkpoint save, and offline it does nothing. The layout follows Lightning's
WandbLogger (``_scan_and_log_checkpoints``): one artifact ``model-<run id>`` of type ``model`` per
run, a version per checkpoint, aliased ``best`` and ``last`` (``latest`` too, as Lightning does);
a finished run logs both, an interrupted one (SIGTERM, Ctrl+C) its ``last``. Each version holds
``checkpoints/<file>.ckpt`` and the run's ``.hydra/config.yaml``: downloaded, it is a run folder
whose data settings eval.py and predict.py read. Its metadata: which checkpoint (``checkpoint``,
``original_filename``, ``epoch``, ``global_step``, ``val/top1_err``, ``val/top5_err``), the run
(``run_status``, ``run_dir``, ``config``: the resolved config), the classes (``class_identity``:
count, sha1 of the ordered wnids, training images and fingerprint, as the checkpoint carries them)
and, when the test ran, ``test/top1_err``, ``test/top5_err`` and ``tested`` (which checkpoint).

The dataset is recorded, never uploaded: ``dataset-<folder name>`` of type ``dataset``, its
metadata the data root (and store), the ordered classes, the split sizes and the splits' file
fingerprints (``alexnet.data.fingerprint``: one stat per file), with the same record as its one
file, ``dataset.json``, so that other data is another version and the same data the same one. No
``add_reference`` to the data folder: W&B's file:// reference walks the whole tree even with
``checksum=False`` (a manifest entry and a stat per image: 1.3 million for ImageNet). The run uses
it as an input (lineage). wandb 0.31's ``use_artifact`` refuses to run offline, so the run logs it
the way ``use_artifact`` logs a new artifact online (``use_after_commit``): the record is in the
offline run, and ``wandb sync`` commits it and marks it used.

No copies of the 160 MB checkpoints: W&B's default (``policy="mutable"``) copies every file into
its staging folder (``$WANDB_DATA_DIR``, by default ~/.local/share/wandb) and, after an upload,
into its cache. Here the checkpoints are hard-linked into the W&B run's folder (``artifact_files/best.ckpt``)
and added as ``immutable`` without the cache: no extra disk while the checkpoint stays, and a
link that keeps the logged content when a resumed run replaces last.ckpt before ``wandb sync``
(then, and only then, the folder holds a checkpoint of its own: delete ``artifact_files/`` once
synced). Online, the links go once the upload is done; an interrupted run uploads its last.ckpt
before it exits (and before submitit requeues it), within the scheduler's grace time.
"""

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from alexnet.checkpointing.callbacks import ClassIdentity, FitRecord
from alexnet.checkpointing.checks import IDENTITY
from alexnet.checkpointing.io import load
from alexnet.checkpointing.resolve import last_checkpoint_path
from alexnet.paths import RunDir

log = logging.getLogger(__name__)

FILES = "artifact_files"  # in the W&B run's own folder (run.settings.sync_dir), which `wandb sync` reads
# Which checkpoints a run logs, by how it ended: an unfinished run's best is provisional.
LOGGED = {"finished": ("best", "last"), "interrupted": ("last",)}
ALIASES = {"best": ["best"], "last": ["last", "latest"]}


def log_run_artifacts(run, *, trainer, cfg: DictConfig, summary: dict) -> list[str]:
    """The dataset (used) and the checkpoints this run's end calls for (logged); their names:aliases."""
    import wandb

    files = Path(run.settings.sync_dir) / FILES
    logged = []
    dataset = dataset_artifact(trainer, files / "dataset.json")
    if dataset is not None:
        # What run.use_artifact does with a new artifact online; it refuses offline (see above).
        run._log_artifact(dataset, is_user_created=True, use_after_commit=True)
        logged.append(f"{dataset.name} (used)")
    config_file = RunDir(cfg.paths.output_dir).config
    for which, path in checkpoints(trainer, summary.get("status")).items():
        # Flat (best.ckpt): a checkpoints/ or .hydra/ folder here would pass for a run folder.
        ckpt = linked(Path(path), files / f"{which}.ckpt")
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=model_metadata(which, ckpt, path, cfg, summary))
        artifact.add_file(str(ckpt), name=f"{RunDir.CHECKPOINTS}/{Path(path).name}", policy="immutable", skip_cache=True)
        if config_file.is_file():  # a few kB, rewritten by a resumed start: copied by W&B (its staging folder)
            artifact.add_file(str(config_file), name=RunDir.CONFIG)
        run.log_artifact(artifact, aliases=ALIASES[which])
        logged.append(f"{artifact.name}:{','.join(ALIASES[which])}")
    return logged


def checkpoints(trainer, status: str | None) -> dict[str, str]:
    """{best|last: file} of those LOGGED for this status that exist; one file is logged once."""
    callback = trainer.checkpoint_callback
    found = {
        "best": getattr(callback, "best_model_path", "") or "",
        "last": str(last_checkpoint_path(trainer)),  # GracefulStop writes it there, whatever the callback recorded
    }
    chosen: dict[str, str] = {}
    for which in LOGGED.get(status, ()):
        path = found[which]
        if path and Path(path).is_file() and path not in chosen.values():
            chosen[which] = path
    return chosen


def linked(source: Path, target: Path) -> Path:
    """``target`` as a hard link to ``source`` (no copy); a copy where the filesystem has no links."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError as err:
        log.info(f"W&B artifact: {source} copied to {target} (no hard link here: {err.strerror})")
        shutil.copyfile(source, target)
    return target


def model_metadata(which: str, ckpt: Path, original: str, cfg: DictConfig, summary: dict) -> dict:
    checkpoint = load(str(ckpt))  # memory-mapped: the numbers it carries, not its weights
    metrics = (checkpoint.get("callbacks") or {}).get(FitRecord().state_key, {}).get("metrics", {})
    identity = checkpoint.get(IDENTITY) or {}
    meta = {
        "checkpoint": which,
        "original_filename": Path(original).name,  # Lightning's key
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        **{k: metrics[k] for k in ("val/top1_err", "val/top5_err") if k in metrics},
        "run_status": summary.get("status"),
        "run_dir": str(cfg.paths.output_dir),
        "class_identity": {
            "num_classes": len(identity.get("classes") or []),
            "classes_sha1": classes_sha1(identity.get("classes") or []),
            **{k: identity.get(k) for k in ("train_images", "train_fingerprint", "root")},
        }
        if identity
        else None,
    }
    if "test/top1_err" in summary:
        meta.update({k: summary[k] for k in ("test/top1_err", "test/top5_err") if k in summary})
        meta["tested"] = summary.get("test_checkpoint_choice")
    meta["config"] = OmegaConf.to_container(cfg, resolve=True)
    return meta


def classes_sha1(classes: list[str]) -> str:
    return hashlib.sha1("\n".join(classes).encode()).hexdigest()


def dataset_artifact(trainer, file: Path):
    """The data the run read, as a ``dataset`` artifact of metadata and its one file (``file``); None without data."""
    import wandb

    datamodule = trainer.datamodule
    if datamodule is None or not getattr(datamodule, "datasets", None):
        log.warning("W&B: no dataset artifact (the data module was not set up)")
        return None
    record = dataset_record(datamodule, trainer)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(record, indent=1) + "\n")
    where = str(datamodule.store or datamodule.root).rstrip("/")
    name = re.sub(r"[^\w.-]", "_", where.rsplit("/", 1)[-1]) or "data"
    artifact = wandb.Artifact(f"dataset-{name}", type="dataset", metadata=record)
    artifact.add_file(str(file), name=file.name, policy="immutable", skip_cache=True)
    return artifact


def dataset_record(datamodule, trainer) -> dict:
    """Root, store, classes, split sizes and file fingerprints: what identifies the data without reading it."""
    identity = next((c.identity for c in trainer.callbacks if isinstance(c, ClassIdentity) and c.identity), None) or {}
    classes = list(datamodule.classes)
    fingerprints = {datamodule.splits["train"]: identity.get("train_fingerprint")}  # computed once, at setup
    splits = {}
    for role, split in datamodule.splits.items():
        if not fingerprints.get(split):
            fingerprints[split] = datamodule.split_fingerprint(split)
        splits[role] = {"split": split, "images": len(datamodule.datasets[role]), "fingerprint": fingerprints[split]}
    return {
        "root": str(datamodule.root),
        "store": str(datamodule.store) if datamodule.store else None,
        "read_from": str(datamodule.source.root),
        "layout": datamodule.source.kind,
        "num_classes": len(classes),
        "classes_sha1": classes_sha1(classes),
        "classes": classes,
        "splits": splits,
    }


def remove_files(run) -> None:
    """The links of an online run, once its uploads are done (``wandb.finish`` waits for them)."""
    shutil.rmtree(Path(run.settings.sync_dir) / FILES, ignore_errors=True)
