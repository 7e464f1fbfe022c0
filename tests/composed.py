"""Data modules and model nodes for the data tests, built from the composed config as a run
builds them (conf/ owns every default; a test names only what it changes)."""

import copy
import functools
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from alexnet.training.config import compose_train


@functools.cache
def _composed(data: str) -> DictConfig:
    return compose_train(f"data={data}", "data.root=unset")


def data_node(root: str | Path, data: str = "imagefolder", **overrides) -> DictConfig:
    """conf/data/DATA with ROOT and OVERRIDES (Python values, None for null) in place."""
    cfg = copy.deepcopy(_composed(data))
    cfg.data.root = str(root)
    for key, value in overrides.items():
        cfg.data[key] = value
    return cfg.data


def data_module(root: str | Path, data: str = "imagefolder", **overrides):
    """The data module ``data=DATA data.root=ROOT data.KEY=VALUE...`` builds."""
    return instantiate(data_node(root, data, **overrides))


def model_node(*overrides: str) -> dict:
    """The model node of ``python train.py OVERRIDES`` (the synthetic set's 10 classes and 67-pixel crop by default)."""
    return OmegaConf.to_container(compose_train(*overrides).model, resolve=True)
