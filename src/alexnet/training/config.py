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

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from alexnet.errors import ConfigError


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
            raise ConfigError(f"{key}.{name}: unknown key ({cls.__name__} takes: {', '.join(p for p in params if p not in skip)})")
        annotation = params[name][1]
        if not type_ok(value, annotation):
            raise ConfigError(f"{key}.{name}: expected {describe(annotation)}, got {value!r} ({type(value).__name__})")
    for name, (p, _) in params.items():
        if p.default is inspect.Parameter.empty and name not in node and name not in skip:
            raise ConfigError(f"{key}.{name}: missing (required by {cls.__name__})")


def build(key: str, factory, *args, **kwargs):
    """Call a constructor, reporting its value errors under the config node's name."""
    try:
        return factory(*args, **kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{key}: {err}") from err


def as_dict(cfg: DictConfig, key: str) -> dict:
    try:
        return OmegaConf.to_container(cfg[key], resolve=True, throw_on_missing=True)
    except Exception as err:  # interpolation to a missing key, a mandatory ??? value, ...
        raise ConfigError(f"{key}: {err}".splitlines()[0]) from err


FAST_PATH_KEYS = ("channels_last", "compile")


def split_fast_path(trainer: dict) -> dict:
    """Take the alexnet.callbacks.fast_path.FastPath keys out of the trainer node (the rest is lightning.Trainer's)."""
    return {k: trainer.pop(k) for k in FAST_PATH_KEYS if k in trainer}


def validate(cfg: DictConfig) -> None:
    """Check every node that becomes a constructor call. Imports are local to keep this module light."""
    from alexnet.models import AlexNet
    from alexnet.training.module import LitAlexNet

    check_node(as_dict(cfg, "model"), AlexNet, "model")
    check_node(as_dict(cfg, "optim"), LitAlexNet, "optim", skip=("model",))
    data = as_dict(cfg, "data")
    if "_target_" not in data:
        raise ConfigError("data._target_: missing (which DataModule to build)")
    check_node(data, get_class(data["_target_"]), "data")
    import lightning as L

    from alexnet.callbacks.fast_path import FastPath

    trainer = as_dict(cfg, "trainer")
    check_node(split_fast_path(trainer), FastPath, "trainer")
    check_node(trainer, L.Trainer, "trainer")
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        raise ConfigError(f"seed: expected an integer, got {cfg.get('seed')!r}")
