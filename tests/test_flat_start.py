"""The flat-start guard: a loss stuck at ln(classes) is named once, with the keys that help, and
``callbacks.flat_start.stop=true`` ends the run there with last.ckpt saved."""

import json
import math

from conftest import run_train
from longrun import checkpoint, tiny

from alexnet.exit_codes import ExitCode

# lr 1e-9: the net cannot move. Its untrained loss on batches of 8 is ln(10) + 0-1.5 (the paper's
# biases of 1 make fc8's logits spread), so the margin is wide here; on a real plateau the loss
# sits at ln(classes) itself, within the default 0.05.
STUCK = [
    "+trainer.limit_train_batches=4",
    "optim.lr=1e-9",
    "callbacks.flat_start.patience_steps=4",
    "callbacks.flat_start.every_n_steps=2",
    "callbacks.flat_start.margin=2.0",
]


def test_a_stuck_loss_is_named_once_with_the_keys_that_help(tmp_path):
    proc = run_train(*tiny(tmp_path / "data", tmp_path / "run", 2, *STUCK))
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "flat start:" in line]
    assert len(warnings) == 1, warnings
    assert f"ln(10) = {math.log(10):.3f}" in warnings[0] and "optim.lr" in warnings[0] and "model.init=caffe" in warnings[0]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"  # a warning only
    # A margin the loss never comes within: no warning.
    proc = run_train(*tiny(tmp_path / "data", tmp_path / "run2", 1, *STUCK, "callbacks.flat_start.margin=0.001"))
    assert "flat start:" not in proc.stdout + proc.stderr


def test_stop_true_ends_the_run_with_last_ckpt_saved(tmp_path):
    run = tmp_path / "run"
    proc = run_train(*tiny(tmp_path / "data", run, 2, *STUCK, "callbacks.flat_start.stop=true"), check=False)
    assert proc.returncode == ExitCode.FLAT_START, proc.stderr[-2000:]
    last = run / "checkpoints" / "last.ckpt"
    assert f"saved {last}" in proc.stderr
    assert checkpoint(last)["global_step"] == 4  # the step at which the guard read its fourth flat step
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "flat_start" and summary["checkpoint"] == str(last)
