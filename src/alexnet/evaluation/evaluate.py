"""Evaluate one checkpoint or an ensemble on a split, centre crop or the paper's ten crops.

Section 4.1: "the network makes a prediction by extracting five 224x224 patches ... as well as
their horizontal reflections ... and averaging the predictions made by the network's softmax
layer on the ten patches". Section 6: "averaging the predictions of five similar CNNs". Both
averages are of softmax probabilities, streamed batch by batch: for each batch every member
predicts, and only running counts are kept (never all members' outputs for the whole split).
"""

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from alexnet.checkpointing import checks
from alexnet.checkpointing.io import load
from alexnet.checkpointing.resolve import run_checkpoint
from alexnet.data.augment import CROP_COUNTS
from alexnet.errors import ConfigError, as_config_error
from alexnet.loggers import wandb_logger
from alexnet.models import saved_model_config
from alexnet.paths import RunDir, project_root
from alexnet.training.config import build
from alexnet.training.module import LitAlexNet, load_module

log = logging.getLogger(__name__)
RESULTS = "results.json"
# Data settings that change what a network sees at test time: ensemble members must agree on them.
EVAL_KEYS = ("root", "store", "resize", "crop_size", "mean", "train_split", "stats_images")


@dataclass
class Member:
    checkpoint: Path
    run_dir: Path | None  # the Hydra run folder (.hydra/config.yaml, summary.json), when there is one
    warning: str | None = None  # why the checkpoint is not the one the run folder names

    def config(self) -> DictConfig | None:
        run = RunDir(self.run_dir) if self.run_dir else None
        if not (run and run.is_run()):
            return None
        cfg = run.read_config()
        if "model" in cfg:
            cfg.model = saved_model_config(OmegaConf.to_container(cfg.model))
        return cfg

    def summary(self) -> dict:
        return run_dir_summary(self.run_dir) if self.run_dir else {}


def is_run_dir(path: Path) -> bool:
    return RunDir(path).is_run()


def member_of(run_dir: Path) -> Member:
    """A run folder's member: the checkpoint it was tested with, else its last one (run_checkpoint)."""
    checkpoint, warning = run_checkpoint(RunDir(run_dir))
    return Member(checkpoint, run_dir, warning)


def run_dir_summary(run_dir: Path) -> dict:
    return RunDir(run_dir).read_summary() or {}


def find_members(paths: list[str]) -> tuple[list[Member], list[dict]]:
    """Each path is a .ckpt file, a run folder, a multirun folder (every job folder in it), or a W&B
    artifact, ``wandb-artifact://entity/project/name:version`` (downloaded: ``fetch_checkpoint``).

    A multirun's jobs that did not finish are skipped and reported, never silently used."""
    members, skipped = [], []
    for raw in paths:
        if str(raw).startswith(wandb_logger.ARTIFACT_SCHEME):
            raw = str(wandb_logger.fetch_checkpoint(raw))
        path = Path(raw).expanduser()
        if path.is_file():
            owner = RunDir.of_checkpoint(path).path
            run_dir = owner if is_run_dir(owner) else None
            members.append(Member(path, run_dir))
        elif is_run_dir(path):
            members.append(member_of(path))
        elif path.is_dir():
            jobs = sorted((p for p in path.iterdir() if is_run_dir(p)), key=lambda p: (len(p.name), p.name))
            if not jobs:
                raise FileNotFoundError(
                    f"{path}: neither a checkpoint, a run folder nor a multirun folder (no */{RunDir.CONFIG})"
                )
            for job in jobs:
                status = run_dir_summary(job).get("status", "incomplete (no summary.json)")
                if status != "finished":
                    skipped.append({"run_dir": str(job), "status": status})
                    log.warning(f"skipping {job}: status {status}")
                else:
                    members.append(member_of(job))
        else:
            raise FileNotFoundError(f"{path}: no such checkpoint or folder")
    if not members:
        raise FileNotFoundError(f"no finished run to evaluate in {', '.join(paths)}")
    return members, skipped


def data_config(member: Member, module: LitAlexNet, data_root: str | None) -> dict:
    """The member's data node (from its run folder), or the imagefolder defaults for a bare checkpoint."""
    cfg = member.config()
    if cfg is not None:
        data = OmegaConf.to_container(cfg.data, resolve=True)
    else:
        if not data_root:
            raise ConfigError(f"{member.checkpoint}: no run folder beside it (../../{RunDir.CONFIG}): pass --data-root")
        defaults = project_root() / "conf" / "data" / "imagefolder.yaml"
        data = OmegaConf.to_container(OmegaConf.load(defaults))
        data.update(crop_size=module.net.crop_size, num_classes=module.net.num_classes)
    if data_root:
        data["root"] = data_root
    return data


def build_datamodule(data: dict, split: str, crops: int, batch_size: int, num_workers: int):
    # The split to evaluate becomes the data module's test split; the training split is still
    # read for the mean image (section 2), from the cache the training run left.
    data = {**data, "test_split": split, "test_crops": crops, "batch_size": batch_size, "num_workers": num_workers}
    datamodule = build("data", instantiate, data)  # a bad value (--batch-size 0) is named: data.batch_size
    try:
        if hasattr(datamodule, "prepare_data"):
            datamodule.prepare_data()
        datamodule.setup("test")
    except (FileNotFoundError, ValueError) as err:
        config = as_config_error(err)
        if config is None:
            raise
        if isinstance(err, FileNotFoundError):  # the run's data.root, most often: the data has moved since
            raise ConfigError(f"{err} (the run's data moved? give its new place with --data-root)") from None
        raise config from None
    return datamodule


def fingerprint(dataset) -> tuple[str, int]:
    """sha256 of the split's (image id, label) list and class names: the same images, labelled the same."""
    records = getattr(dataset, "records", None)
    if records is not None:
        listing = zip(records.ids, records.labels.tolist())
    else:  # torchvision DatasetFolder
        listing = ((os.path.relpath(p, dataset.root), y) for p, y in dataset.samples)
    digest = hashlib.sha256("\n".join(dataset.classes).encode())
    n = 0
    for image_id, label in listing:
        digest.update(f"{image_id}\t{label}\n".encode())
        n += 1
    return digest.hexdigest(), n


class Counts:
    """Running top-1 / top-5 errors: two integers per model, whatever the split's size."""

    def __init__(self, k: int):
        self.k, self.n, self.wrong1, self.wrong5 = k, 0, 0, 0

    def update(self, probs: torch.Tensor, y: torch.Tensor) -> None:
        top = probs.topk(self.k, dim=1).indices
        self.wrong1 += int((top[:, 0] != y).sum())
        self.wrong5 += int((top != y[:, None]).all(1).sum())
        self.n += len(y)

    def errors(self) -> dict:
        return {"top1_err": self.wrong1 / self.n, "top5_err": self.wrong5 / self.n}


def evaluate(
    paths: list[str],
    split: str = "val",
    crops: int = 10,
    batch_size: int = 64,
    num_workers: int = 0,
    data_root: str | None = None,
    device: str | None = None,
    out: Path | None = None,
) -> dict:
    if crops not in CROP_COUNTS:
        raise ConfigError(f"--crops must be one of {CROP_COUNTS} (centre; corners, centre, reflections), got {crops}")
    start = time.time()
    members, skipped = find_members(paths)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    modules = [load_module(m.checkpoint, map_location=device).eval() for m in members]
    configs = [data_config(m, mod, data_root) for m, mod in zip(members, modules)]
    for m, c in zip(members[1:], configs[1:]):
        differ = [k for k in EVAL_KEYS if c.get(k) != configs[0].get(k)]
        if differ:
            raise ConfigError(
                f"ensemble members see different test images: data.{differ[0]} is {c.get(differ[0])!r} for "
                f"{m.checkpoint} but {configs[0].get(differ[0])!r} for {members[0].checkpoint}"
            )
    datamodule = build_datamodule(configs[0], split, crops, batch_size, num_workers)
    for m, mod in zip(members, modules):
        if mod.net.num_classes != datamodule.num_classes:
            raise ConfigError(
                f"{m.checkpoint} has {mod.net.num_classes} classes; "
                f"split '{split}' of {datamodule.root} has {datamodule.num_classes}"
            )
    identity = checks.class_identity(datamodule)  # same count is not enough: label i must be the same class
    for m in members:
        checks.check_classes("checkpoint", str(m.checkpoint), load(str(m.checkpoint)), identity, strict=True)
    k = min(5, datamodule.num_classes)
    counts, ensemble = [Counts(k) for _ in members], Counts(k)
    with torch.inference_mode():
        for x, y in datamodule.eval_loader("test", crops, device):
            total = None
            for module, count in zip(modules, counts):
                probs = module.predict_proba(x, crops)  # softmax averaged over the crops
                count.update(probs, y)
                total = probs if total is None else total + probs
            ensemble.update(total / len(modules), y)
    digest, n = fingerprint(datamodule.dataset("test"))
    results = {
        "split": split,
        "crops": crops,
        "data_root": str(datamodule.root),
        "images": n,
        "data_fingerprint": digest,
        "members": [member_result(m, c) for m, c in zip(members, counts)],
        "ensemble": {"size": len(members), **ensemble.errors()},
        "skipped": skipped,
        "warnings": [m.warning for m in members if m.warning],
        "seconds": round(time.time() - start, 1),
        "device": str(device),
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    return results


def member_result(member: Member, counts: Counts) -> dict:
    summary = member.summary()
    return {
        "checkpoint": str(member.checkpoint),
        "run_dir": str(member.run_dir) if member.run_dir else None,
        "experiment": summary.get("experiment"),
        "seed": summary.get("seed"),
        "tags": summary.get("tags", []),
        **counts.errors(),
    }
