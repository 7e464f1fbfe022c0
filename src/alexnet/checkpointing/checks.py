"""What a checkpoint must be: of this very network and of this data's classes before a run
resumes from it, and of finite weights before it is written."""

import logging

import lightning as L
import torch

from alexnet.checkpointing.resolve import latest_good_checkpoint
from alexnet.errors import ConfigError, Diverged
from alexnet.models import saved_model_config

log = logging.getLogger(__name__)


def check_matches(path: str, checkpoint: dict, module: torch.nn.Module, model_cfg: dict) -> None:
    """The checkpoint must be of this very network: same class count, same layers, same shapes."""
    saved = checkpoint["state_dict"]
    ours = module.state_dict()
    trained = saved_model_config((checkpoint.get("hyper_parameters") or {}).get("model") or {})
    fc8 = "net.classifier.fc8.weight"
    if fc8 in saved and fc8 in ours and saved[fc8].shape[0] != ours[fc8].shape[0]:
        raise ConfigError(
            f"ckpt_path: {path} has {saved[fc8].shape[0]} classes (fc8), this run has data.num_classes={ours[fc8].shape[0]}"
        )
    differences = [
        f"model.{k}={trained[k]!r} there, {v!r} here" for k, v in model_cfg.items() if k in trained and trained[k] != v
    ]
    missing = [k for k in ours if k not in saved]
    unexpected = [k for k in saved if k not in ours]
    shapes = [
        f"{k}: {tuple(saved[k].shape)} there, {tuple(v.shape)} here"
        for k, v in ours.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if missing or unexpected or shapes or differences:
        details = differences + shapes[:3]
        if missing:
            details.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise ConfigError(f"ckpt_path: {path} is from another architecture than this run's model: {'; '.join(details)}")


IDENTITY = "class_identity"  # the checkpoint's key: what each output of fc8 means


def class_differences(saved: list[str], current: list[str], there: str, here: str) -> str | None:
    """How two ordered class lists differ (None: they are the same), both sides named."""
    if list(saved) == list(current):
        return None

    def some(names: list[str]) -> str:
        return ", ".join(names[:5]) + (f" ... ({len(names)} in all)" if len(names) > 5 else "")

    only_saved = [c for c in saved if c not in set(current)]
    only_current = [c for c in current if c not in set(saved)]
    parts = [f"{len(saved)} classes {there}, {len(current)} {here}"]
    if only_saved:
        parts.append(f"only {there}: {some(only_saved)}")
    if only_current:
        parts.append(f"only {here}: {some(only_current)}")
    if not only_saved and not only_current:
        i = next(i for i, (a, b) in enumerate(zip(saved, current)) if a != b)
        parts.append(f"the same classes in another order (label {i} is {saved[i]!r} {there}, {current[i]!r} {here})")
    return "; ".join(parts)


def check_classes(key: str, path: str, checkpoint: dict, current: dict | None, strict: bool) -> dict | None:
    """Compares the classes a checkpoint was trained on with this data's. ``strict``: a difference
    is an error (resume, evaluation); else a warning (fine-tuning replaces fc8). Returns what was
    found, for the run's summary; a checkpoint saved before class names were recorded is a warning."""
    saved = checkpoint.get(IDENTITY)
    if current is None:
        return None
    if not saved:
        log.warning(
            f"{key}: {path} records no class names (saved before they were kept in checkpoints): "
            "cannot check that its classes are this data's"
        )
        return {"classes": "not recorded in the checkpoint"}
    differences = class_differences(saved["classes"], current["classes"], "in the checkpoint", f"in {current['root']}")
    if differences and strict:
        raise ConfigError(f"{key}: {path} was trained on other classes than this data: {differences}")
    if differences:
        log.warning(f"{key}: {path} was trained on other classes: {differences}; fc8 is new for this data's classes")
        return {"classes": "differ", "differences": differences}
    if saved.get("train_fingerprint") != current.get("train_fingerprint"):
        log.warning(
            f"{key}: {path} has this data's classes but was trained on other training files "
            f"({saved.get('train_images')} images then, {current.get('train_images')} in {current['root']} now)"
        )
        return {"classes": "same", "train_files": "differ"}
    return {"classes": "same", "train_files": "same"}


def class_identity(datamodule) -> dict | None:
    """The training split's classes in label order (label i is ``classes[i]``), their readable
    names, its image count and the data module's fingerprint of its files (names and sizes);
    None for a data module without that split. After the data module's setup."""
    train = (getattr(datamodule, "datasets", None) or {}).get("train")
    if train is None:
        return None
    classes = list(datamodule.classes)
    return {
        "classes": classes,
        "class_names": list(datamodule.class_names()),
        "train_images": len(train),
        "train_fingerprint": datamodule.train_fingerprint(),
        "root": str(datamodule.root),
    }


def check_weights_finite(trainer: L.Trainer, path: str) -> None:
    # Weights are the same on every rank (DDP all-reduces the gradients), so every rank decides alike.
    if all(bool(torch.isfinite(p).all()) for p in trainer.lightning_module.parameters()):
        return
    good = latest_good_checkpoint(trainer)
    kept = f"the last good checkpoint is {good}" if good else "no checkpoint had been written yet"
    raise Diverged(
        f"the weights are NaN/inf at epoch {trainer.current_epoch}, step {trainer.global_step}: {path} not written; {kept}. "
        "Lower optim.lr or check the data.",
        "diverged",
        3,
        good,
    )
