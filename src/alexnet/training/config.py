"""Validation of the composed Hydra config, before any work starts, and the config's builders.

YAML owns every default and constructors take required keyword-only arguments: the YAML files
are the menu a user reads, with the paper's words beside each value, and the constructor's typed
signature is the schema this module checks every node against (unknown key, missing key, wrong
type -> one line ``config error: <key>: ...``). Value checks that a type cannot say
(``dropout=1.5``, an even LRN size, ...) are the constructors' own, reported with the node's name.
Code outside a run (tests, benchmarks, scripts) builds from the composed config too
(``node``, ``build_data``, ``paper_optim``), never by repeating its values.
"""

import inspect
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from hydra import compose, initialize_config_dir
from hydra.utils import get_class, get_object
from omegaconf import DictConfig, OmegaConf

from alexnet.errors import ConfigError
from alexnet.paths import project_root, register_resolvers


def compose_train(*overrides: str) -> DictConfig:
    """The config that ``python train.py OVERRIDES`` composes (this checkout's conf/), without running it."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def node(key: str, *overrides: str) -> dict:
    """One node of the config ``python train.py OVERRIDES`` composes, resolved: its constructor's arguments."""
    return as_dict(compose_train(*overrides), key)


def paper_optim() -> dict:
    """conf/train.yaml's ``optim`` node: section 5's SGD, for code that builds a LitAlexNet without a run."""
    return node("optim", "experiment=alexnet_paper")


def build_data(*overrides: str, **args):
    """The data module ``python train.py OVERRIDES`` builds, for code outside a run; ``args`` replace
    node values before interpolation (``root=...``: imagenet.yaml's ``store`` follows it)."""
    cfg = compose_train(*overrides)
    for name, value in args.items():
        cfg.data[name] = value
    data = as_dict(cfg, "data")
    return get_class(data.pop("_target_"))(**data)


def target(path: str, key: str):
    """The class or function (logger.wandb's) a node's ``_target_`` names."""
    try:
        return get_object(path)
    except Exception as err:
        cause = err.__cause__ or err
        raise ConfigError(f"{key}._target_: cannot import {path!r} ({type(cause).__name__}: {cause})") from None


class Param(typing.NamedTuple):
    annotation: Any
    default: Any  # inspect.Parameter.empty: none
    owner: Any  # the function whose signature names it
    required: bool


def constructor_params(factory) -> tuple[dict[str, Param], bool]:
    """Named parameters of a class's ``__init__`` (following ``**kwargs`` up the MRO) or of a
    function, with their resolved types; and whether ``**kwargs`` still takes any other name.

    A parameter without a default is required where this project's own code forwards to it; a
    third-party class may fill its parent's arguments itself (TensorBoardLogger's ``root_dir``)."""
    params: dict[str, Param] = {}
    functions = [k.__init__ for k in factory.__mro__ if "__init__" in vars(k)] if isinstance(factory, type) else [factory]
    open_ended, forwarded_by_us = False, True
    for function in functions:
        try:
            hints = typing.get_type_hints(function)
        except Exception:  # a third-party annotation that does not resolve: its types go unchecked
            hints = {}
        signature = inspect.signature(function)
        for name, p in signature.parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name not in params:
                required = p.default is inspect.Parameter.empty and forwarded_by_us
                params[name] = Param(hints.get(name, Any), p.default, function, required)
        open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
        forwarded_by_us = forwarded_by_us and (getattr(function, "__module__", None) or "").startswith("alexnet.")
        if not open_ended:
            break
    return params, open_ended


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


def check_node(node: dict, factory, key: str, skip: tuple[str, ...] = ()) -> None:
    """Check a plain dict of constructor arguments against ``factory``'s signature."""
    params, open_ended = constructor_params(factory)
    for name, value in node.items():
        if name.startswith("_") or name in skip:
            continue
        if name not in params:
            if open_ended:
                continue
            raise ConfigError(
                f"{key}.{name}: unknown key ({factory.__name__} takes: {', '.join(p for p in params if p not in skip)})"
            )
        annotation = params[name].annotation
        if not type_ok(value, annotation):
            raise ConfigError(f"{key}.{name}: expected {describe(annotation)}, got {value!r} ({type(value).__name__})")
    for name, param in params.items():
        if param.required and name not in node and name not in skip:
            raise ConfigError(f"{key}.{name}: missing (required by {factory.__name__})")


def targets(cfg: DictConfig) -> dict[str, tuple[Any, dict]]:
    """Every node that becomes a constructor call, by key: (the class or function, its arguments)."""
    import lightning as L

    from alexnet.models import AlexNet
    from alexnet.training.optim import PaperSGD

    nodes = {"model": (AlexNet, as_dict(cfg, "model")), "optim": (PaperSGD, as_dict(cfg, "optim"))}
    data = as_dict(cfg, "data")
    if "_target_" not in data:
        raise ConfigError("data._target_: missing (which DataModule to build)")
    nodes["data"] = (target(data["_target_"], "data"), data)
    for group in ("callbacks", "logger"):
        for name, sub in (cfg.get(group) or {}).items():
            if sub is not None:
                try:
                    args = as_dict(cfg[group], name)
                except ConfigError as err:  # named under its group: callbacks.figures: ...
                    raise ConfigError(f"{group}.{err}") from err.__cause__
                nodes[f"{group}.{name}"] = (target(args.get("_target_", ""), f"{group}.{name}"), args)
    trainer, profiler = trainer_node(cfg)
    if profiler is not None:
        nodes["trainer.profiler"] = (target(profiler.get("_target_", ""), "trainer.profiler"), profiler)
    nodes["trainer"] = (L.Trainer, trainer)
    return nodes


def trainer_node(cfg: DictConfig) -> tuple[dict, dict | None]:
    """lightning.Trainer's arguments, less a ``profiler`` given as a node (``_target_``: debug=profiler's,
    with the run folder as its dirpath), returned apart for the run to build."""
    trainer = as_dict(cfg, "trainer")
    if isinstance(trainer.get("profiler"), dict):
        return trainer, trainer.pop("profiler")
    return trainer, None


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


def validate(cfg: DictConfig) -> None:
    """Check every node that becomes a constructor call against its signature. Imports are local to keep this module light."""
    for key, (factory, args) in targets(cfg).items():
        # data.num_classes: null is counted from the data once the data module is built.
        skip = ("num_classes",) if key == "model" and args.get("num_classes", 0) is None else ()
        check_node(args, factory, key, skip)
    if cfg.get("test_checkpoint") not in TEST_CHECKPOINTS:
        raise ConfigError(f"test_checkpoint: expected one of {', '.join(TEST_CHECKPOINTS)}, got {cfg.get('test_checkpoint')!r}")
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        raise ConfigError(f"seed: expected an integer, got {cfg.get('seed')!r}")
