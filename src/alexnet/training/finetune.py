"""Section 6's "*" models: fine-tune a pre-trained net on a new label set (``init_from=CKPT``).

"pre-training it on the classification task on the entire ImageNet Fall 2011 release ... and
then fine-tuning it on ILSVRC-2012". The conv layers, fc6 and fc7 are copied; fc8 is the one
layer tied to the label set, so it is always new (the paper's N(0, 0.01) init). Only weights
are taken: the fine-tuning run starts its own optimiser, schedule and epoch count.
"""

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from alexnet.checkpointing import io as checkpoint
from alexnet.errors import ConfigError
from alexnet.paths import RunDir
from alexnet.training.module import LitAlexNet

log = logging.getLogger(__name__)
NEW = ("net.classifier.fc8.",)  # replaced, whatever the class counts


def init_from(cfg: DictConfig, module: LitAlexNet) -> dict | None:
    """Copies every weight but fc8 from ``cfg.init_from`` into ``module``; returns what was copied and replaced."""
    if OmegaConf.is_missing(cfg, "init_from"):  # checked first: a ??? value is not "in" a DictConfig
        raise ConfigError(
            "init_from: set the pre-trained checkpoint, e.g. "
            f"init_from=outputs/runs/<pretrain run>/{RunDir.CHECKPOINTS}/{RunDir.LAST}"
        )
    if cfg.get("init_from") is None:
        return None
    path = Path(cfg.init_from).expanduser()
    if not path.is_file():
        raise ConfigError(f"init_from: no checkpoint file {path.resolve()}")
    source = checkpoint.load(str(path))["state_dict"]
    own = module.state_dict()
    copied, replaced = [], sorted(k for k in own if k.startswith(NEW))
    for key, value in own.items():
        if key in replaced:
            continue
        if key not in source:
            raise ConfigError(f"init_from: {path} has no {key} (was it trained with the same model.extra_conv / model.columns?)")
        if source[key].shape != value.shape:
            raise ConfigError(
                f"init_from: {key} is {tuple(source[key].shape)} in {path} but {tuple(value.shape)} here "
                "(model.columns, model.extra_conv and data.crop_size must match the pre-trained net)"
            )
        copied.append(key)
    module.load_state_dict({k: source[k] for k in copied}, strict=False)
    layers = sorted({k.split(".")[-2] for k in copied})
    fc8 = source.get("net.classifier.fc8.weight")
    old_classes = None if fc8 is None else int(fc8.shape[0])
    report = {
        "checkpoint": str(path),
        "copied_layers": layers,
        "replaced_layers": ["fc8"],
        "fc8_classes": {"pretrained": old_classes, "new": module.net.num_classes},
    }
    log.info(
        f"init_from {path}: copied {', '.join(layers)}; "
        f"fc8 replaced ({old_classes} -> {module.net.num_classes} classes, new init)"
    )
    return report
