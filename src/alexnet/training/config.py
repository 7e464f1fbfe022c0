"""Validation of the composed Hydra config, before any work starts.

Each config node mirrors a constructor one to one, so the constructor's signature is the
schema: unknown keys, missing keys and wrong types are caught here with the key's full
name; value checks (``dropout=1.5``, an even LRN size, ...) are the constructors' own,
reported with the node's name.
"""

import inspect
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from alexnet.errors import ConfigError
from alexnet.paths import project_root


def compose_train(*overrides: str) -> DictConfig:
    """The config that ``python train.py OVERRIDES`` composes (this checkout's conf/), without running it."""
    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def paper_optim() -> dict:
    """conf/train.yaml's ``optim`` node: section 5's SGD, for code that builds a LitAlexNet without a run."""
    return as_dict(compose_train("experiment=alexnet_paper"), "optim")


def constructor_params(cls: type) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Named parameters of ``cls.__init__`` with their resolved types, following ``**kwargs`` up the MRO."""
    params: dict[str, tuple[inspect.Parameter, Any]] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        hints = typing.get_type_hints(klass.__init__)
        signature = inspect.signature(klass.__init__)
        for name, p in signature.parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params.setdefault(name, (p, hints.get(name, Any)))
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return params


def type_ok(value: Any, annotation: Any) -> bool:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return value in get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(type_ok(value, arg) for arg in get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is not None:  # dict[...], list[...]
        return isinstance(value, origin)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def describe(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_node(node: dict, cls: type, key: str, skip: tuple[str, ...] = ()) -> None:
    """Check a plain dict of constructor arguments against ``cls``'s signature."""
    params = constructor_params(cls)
    for name, value in node.items():
        if name.startswith("_") or name in skip:
            continue
        if name not in params:
            raise ConfigError(
                f"{key}.{name}: unknown key ({cls.__name__} takes: {', '.join(p for p in params if p not in skip)})"
            )
        annotation = params[name][1]
        if not type_ok(value, annotation):
            raise ConfigError(f"{key}.{name}: expected {describe(annotation)}, got {value!r} ({type(value).__name__})")
    for name, (p, _) in params.items():
        if p.default is inspect.Parameter.empty and name not in node and name not in skip:
            raise ConfigError(f"{key}.{name}: missing (required by {cls.__name__})")


def build(key: str, factory, *args, **kwargs):
    """Call a constructor, reporting its value errors under the key they are about.

    A constructor's message starts with its argument's name (``lr must be positive``), so it is
    reported as ``optim.lr: must be positive``. A dict argument is the config node of the same
    name (LitAlexNet's ``model`` and ``optim``), so an error about one of its entries is reported
    under that node, whichever node's name the call was made under.
    """
    from hydra.errors import InstantiationException

    try:
        return factory(*args, **kwargs)
    except (ValueError, TypeError, InstantiationException) as err:
        # Hydra's instantiate wraps the constructor's error; the constructor's own is the one to report.
        cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ is not None else err
        if isinstance(cause, ConfigError):  # already names its key
            raise cause from None
        if not isinstance(cause, (ValueError, TypeError)):
            raise
        raise ConfigError(named(key, str(cause), args, kwargs)) from cause


def named(key: str, message: str, args: tuple, kwargs: dict) -> str:
    """``key.argument: rest`` when the message starts with one of the call's argument names, else ``key: message``."""
    if message.startswith((f"{key}.", f"{key}:")):  # the constructor named the key itself
        return message
    first, _, rest = message.partition(" ")
    top = set(kwargs)
    for node in args:  # instantiate(cfg.data): the node's keys are the constructor's arguments
        if isinstance(node, (dict, DictConfig)):
            top |= set(node.keys())
    nested = {sub: value for sub, value in kwargs.items() if isinstance(value, (dict, DictConfig))}
    if first in top and first not in nested:
        where = f"{key}.{first}"
    else:
        where = next((f"{sub}.{first}" for sub, value in nested.items() if first in value), None)
    if where is None:
        return f"{key}: {message}"
    # "lr must be positive" reads as "optim.lr: must be positive"; "crop_size (90) must ..." keeps its subject.
    return f"{where}: {rest}" if rest[:1].isalpha() else f"{where}: {message}"


def as_dict(cfg: DictConfig, key: str) -> dict:
    try:
        return OmegaConf.to_container(cfg[key], resolve=True, throw_on_missing=True)
    except Exception as err:  # interpolation to a missing key, a mandatory ??? value, ...
        raise ConfigError(f"{key}: {err}".splitlines()[0]) from err


TEST_CHECKPOINTS = ("best", "last")  # test_checkpoint: what the test after fitting scores
FAST_PATH_KEYS = ("channels_last", "compile")


def split_fast_path(trainer: dict) -> dict:
    """Take the alexnet.callbacks.fast_path.FastPath keys out of the trainer node (the rest is lightning.Trainer's)."""
    return {k: trainer.pop(k) for k in FAST_PATH_KEYS if k in trainer}


def validate(cfg: DictConfig) -> None:
    """Check every node that becomes a constructor call. Imports are local to keep this module light."""
    from alexnet.models import AlexNet
    from alexnet.training.optim import PaperSGD

    model = as_dict(cfg, "model")
    if model.get("num_classes") is None:  # data.num_classes: null, counted from the data once the data module is built
        model.pop("num_classes", None)
    check_node(model, AlexNet, "model")
    check_node(as_dict(cfg, "optim"), PaperSGD, "optim")
    data = as_dict(cfg, "data")
    if "_target_" not in data:
        raise ConfigError("data._target_: missing (which DataModule to build)")
    check_node(data, get_class(data["_target_"]), "data")
    import lightning as L

    from alexnet.callbacks.fast_path import FastPath

    trainer = as_dict(cfg, "trainer")
    check_node(split_fast_path(trainer), FastPath, "trainer")
    check_node(trainer, L.Trainer, "trainer")
    if cfg.get("test_checkpoint") not in TEST_CHECKPOINTS:
        raise ConfigError(f"test_checkpoint: expected one of {', '.join(TEST_CHECKPOINTS)}, got {cfg.get('test_checkpoint')!r}")
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        raise ConfigError(f"seed: expected an integer, got {cfg.get('seed')!r}")
