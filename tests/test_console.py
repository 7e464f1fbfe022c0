"""A clean console: train.py (a real subprocess) prints each message once, in Hydra's format, with
no advertisements and a measured FLOPs column; every command's --help describes every option."""

import re
import subprocess
import sys
from collections import Counter

import pytest
from builders import model_args
from conftest import ROOT, run_train
from lightning.pytorch.utilities.model_summary import get_human_readable_count

from alexnet.callbacks.model_summary import forward_flops
from alexnet.models import AlexNet

HYDRA_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+\]\[[\w.]+\]\[(INFO|WARNING|ERROR)\] - ")


def progress_line(line: str) -> bool:
    """The rich bars and table rules redraw themselves: repeats there are not messages."""
    return "━" in line or "it/s" in line or line.lstrip().startswith(("Epoch ", "Validation", "Testing", "Sanity"))


def test_train_prints_each_message_once_in_hydras_format_without_advertisements(tmp_path):
    run = tmp_path / "run"
    proc = run_train(
        "debug=fdr", f"data.root={tmp_path}/synthetic", "data.train_per_class=8", "data.val_per_class=4", f"hydra.run.dir={run}"
    )
    lines = [line.rstrip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    repeated = [line for line, n in Counter(line for line in lines if not progress_line(line)).items() if n > 1]
    assert not repeated, "\n".join(repeated)
    console = "\n".join(lines)
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


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_is_described(command):
    proc = subprocess.run([sys.executable, *command.split(), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    missing = [o for o in COMMANDS[command] if not described(proc.stdout, o)]
    assert not missing, proc.stdout
    if command.endswith("fig1"):  # its KEY=VALUE overrides: every key of the YAML node, with its value
        assert "max_epochs=80" in proc.stdout and "lr={'relu': 0.003, 'tanh': 0.01}" in proc.stdout


def test_train_help_lists_every_group_and_key():
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("python train.py [group=option ...] [key=value ...]")
    assert "experiment: ablation_1gpu, ablation_no_dropout" in proc.stdout
    assert "logger: csv, none, tensorboard, wandb" in proc.stdout
    for key in ("lrn_convention: cuda_convnet", "pca_lighting: true", "lr_patience: 5", "figures: true", "model_summary:"):
        assert key in proc.stdout
