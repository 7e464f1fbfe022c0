"""Networks, LRNs and data modules for tests, built from the composed config: conf/ owns every
value, a test names only what it changes."""

import copy
import functools
from pathlib import Path

from conftest import compose_train
from hydra.utils import instantiate
from omegaconf import DictConfig

from alexnet.models import AlexNet, LocalResponseNorm
from alexnet.training.config import as_dict

PAPER = ("experiment=alexnet_paper",)  # the paper's net: 1000 classes, 227x227 crops
SMALL = ("experiment=alexnet_paper", "data=synthetic")  # the paper's net on the synthetic data's 10 classes and crops


@functools.cache
def composed_model(overrides: tuple[str, ...]) -> dict:
    return as_dict(compose_train(*overrides), "model")


def model_args(*overrides: str, **args) -> dict:
    """The ``model`` node of ``train.py OVERRIDES``, ``args`` replacing its values."""
    return {**composed_model(overrides), **args}


def small_model(**args) -> dict:
    """The paper's model node at the synthetic data's classes and crop size: a network that runs in milliseconds."""
    return model_args(*SMALL, **args)


def paper_net(**args) -> AlexNet:
    return AlexNet(**model_args(*PAPER, **args))


def lrn_args(**args) -> dict:
    """LocalResponseNorm's arguments from the model node's ``lrn_*`` keys (section 3.3's constants)."""
    m = model_args(*PAPER)
    paper = dict(
        size=m["lrn_size"],
        alpha=m["lrn_alpha"],
        beta=m["lrn_beta"],
        k=m["lrn_k"],
        convention=m["lrn_convention"],
        compiled=m["lrn_compiled"],
    )
    return {**paper, **args}


def lrn(**args) -> LocalResponseNorm:
    return LocalResponseNorm(**lrn_args(**args))


@functools.cache
def composed_data(data: str) -> DictConfig:
    return compose_train(f"data={data}", "data.root=unset")


def data_node(root: str | Path, data: str = "imagefolder", **overrides) -> DictConfig:
    """conf/data/DATA with ROOT and OVERRIDES (Python values, None for null) in place."""
    cfg = copy.deepcopy(composed_data(data))
    cfg.data.root = str(root)
    for key, value in overrides.items():
        cfg.data[key] = value
    return cfg.data


def data_module(root: str | Path, data: str = "imagefolder", **overrides):
    """The data module ``data=DATA data.root=ROOT data.KEY=VALUE...`` builds."""
    return instantiate(data_node(root, data, **overrides))
