"""A clean console: train.py (a real subprocess) prints each message once, in Hydra's format, with
no advertisements and a measured FLOPs column; every command's --help describes every option."""

import re
import runpy
import sys
from collections import Counter

import pytest
from builders import model_args
from conftest import ROOT, process_kept, script
from lightning.pytorch.utilities.model_summary import get_human_readable_count

from alexnet.callbacks.model_summary import forward_flops
from alexnet.data import prepare
from alexnet.evaluation import tables
from alexnet.experiments import fig1
from alexnet.models import AlexNet

HYDRA_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+\]\[[\w.]+\]\[(INFO|WARNING|ERROR)\] - ")


def progress_line(line: str) -> bool:
    """The rich bars and table rules redraw themselves, and the config tree's leaves repeat
    (every_n_steps: 20 under several callbacks): repeats there are not messages."""
    return (
        "━" in line
        or "it/s" in line
        or line.lstrip().startswith(("Epoch ", "Validation", "Testing", "Sanity"))
        or line.startswith(("│", "├", "└"))
    )


def test_train_prints_each_message_once_in_hydras_format_without_advertisements(cli_run):
    run, proc = cli_run  # python train.py debug=fdr ... (tests/conftest.py)
    lines = [line.rstrip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    repeated = [line for line, n in Counter(line for line in lines if not progress_line(line)).items() if n > 1]
    assert not repeated, "\n".join(repeated)
    console = "\n".join(lines)
    # The composed config, once, as a tree before the run (extras.print_config), values resolved.
    assert lines.count("config") == 1 and re.search(r"^├── data$", console, re.M)
    assert re.search(r"^│ +crop_size: 67$", console, re.M) and "${" not in console
    for advert in ("litlogger", "litmodels", "💡", "Tip:"):
        assert advert not in console
    seed = [line for line in lines if "Seed set to 0" in line]
    assert len(seed) == 1 and HYDRA_LINE.match(seed[0]) and "[lightning.fabric.utilities.seed]" in seed[0]
    assert not [line for line in lines if line.startswith(("INFO: ", "WARNING: "))]  # Lightning's own format
    # The summary's FLOPs: one 67-pixel image through the two-GPU net, not 0. Convolutions and fully
    # connected layers alone are 117.35 MFLOP (2 per multiply-add); the LRN adds its own share.
    # The net as the run above built it: the eager LRN (tests/conftest.py), whose band product counts.
    flops = forward_flops(AlexNet(**model_args("debug=fdr", lrn_compiled=False)), 67)
    assert flops[""] >= 117_352_512 and flops["features.conv1"] == 2 * 96 * 15 * 15 * 363
    shown = get_human_readable_count(flops[""])
    assert re.search(rf"│ net +│ AlexNet +│ 20\.2 M │ train │ {shown} │", console) and f"Total FLOPs: {shown}" in console
    log = (run / "train.log").read_text().splitlines()
    assert sum("Seed set to 0" in line for line in log) == 1 and "GPU available" in "\n".join(log)


def described(help_text: str, option: str) -> bool:
    """The option is listed with a description (on its line, or the next, indented, line)."""
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(rf"^\s+(-\w, )?{re.escape(option)}\b(.*)$", line)
        if match:  # "--out OUT   what it is", or "--splits SPLITS [SPLITS ...]" and the text below
            return "  " in match.group(2).strip() or (i + 1 < len(lines) and re.match(r"^\s{10,}\S", lines[i + 1]) is not None)
    return False


COMMANDS = {
    "eval.py": ["--split", "--crops", "--batch-size", "--num-workers", "--data-root", "--device", "--out"],
    "predict.py": ["--crops", "--top-k", "--json", "--out", "--batch-size", "--data-root", "--device"],
    "-m alexnet.evaluation.tables": ["--out", "--wandb"],
    "-m alexnet.data.prepare": ["--splits", "--workers", "--shard-size", "--resize", "--quality"],
    "-m alexnet.experiments.fig1": ["--out"],
}


def main_of(command: str):
    modules = {"-m alexnet.evaluation.tables": tables, "-m alexnet.data.prepare": prepare, "-m alexnet.experiments.fig1": fig1}
    return modules[command].main if command in modules else script(command).main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_is_described(command, capsys, monkeypatch):
    # Each command's own main() in this process: argparse prints the same --help as `python ...`.
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit:
        main_of(command)(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    missing = [o for o in COMMANDS[command] if not described(out, o)]
    assert not missing, out
    if command.endswith("fig1"):  # its KEY=VALUE overrides: every key of the YAML node, with its value
        assert "max_epochs=80" in out and "lr={'relu': 0.003, 'tanh': 0.01}" in out


def test_train_help_lists_every_group_and_key(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "--help"])
    with process_kept(), pytest.raises(SystemExit) as exit:  # train.py's Hydra main, as `python train.py --help` runs it
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    assert exit.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("python train.py [group=option ...] [key=value ...]")
    assert "experiment: ablation_1gpu, ablation_no_dropout" in out
    assert "logger: csv, none, tensorboard, wandb" in out
    for key in ("lrn_convention: cuda_convnet", "pca_lighting: true", "lr_patience: 5", "figures: true", "model_summary:"):
        assert key in out
