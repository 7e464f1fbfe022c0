"""Networks, LRNs and data modules for tests, built from the composed config: conf/ owns every
value, a test names only what it changes."""

from functools import lru_cache

from alexnet.models import AlexNet, LocalResponseNorm
from alexnet.training.config import build_data, node

PAPER = ("experiment=alexnet_paper",)  # the paper's net: 1000 classes, 227x227 crops
SMALL = ("experiment=alexnet_paper", "data=synthetic")  # the paper's net on the synthetic data's 10 classes and crops


@lru_cache
def composed_model(overrides: tuple[str, ...]) -> dict:
    return node("model", *overrides)


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


def image_folder(root, **args):
    """conf/data/imagefolder.yaml's data module reading ``root``, ``args`` replacing node values."""
    return build_data("data=imagefolder", root=str(root), **args)
