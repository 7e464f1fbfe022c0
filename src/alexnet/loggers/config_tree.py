"""The composed config, printed once at the start of a run as a rich tree (one branch per group),
as lightning-hydra-template's ``print_config_tree`` does: what the run is about to do, before it
does it. ``extras.print_config=false`` turns it off; the run folder's ``.hydra/config.yaml`` holds
the same config either way."""

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

# The groups a reader looks for first; the rest follow in the config's own order.
FIRST = ("data", "model", "optim", "trainer", "callbacks", "logger", "paths")


@rank_zero_only
def print_config_tree(cfg: DictConfig, console: Console | None = None) -> None:
    tree = Tree("config", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST]
    for key in keys:
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else f"{node}\n"
        tree.add(key, style="bold").add(Syntax(text.rstrip("\n"), "yaml", theme="ansi_dark", background_color="default"))
    (console or Console()).print(tree)
