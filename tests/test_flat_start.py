"""The flat-start guard: a loss stuck at ln(classes) is named once, with the keys that help, and
``callbacks.flat_start.stop=true`` ends the run there with last.ckpt saved.

The guard's logic is tested on loss sequences fed to the callback; one run checks its wiring."""

import json
import logging
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import train_in_process
from longrun import checkpoint, toy

from alexnet.callbacks.flat_start import FlatStart
from alexnet.errors import RunStopped
from alexnet.exit_codes import ExitCode

CHANCE = math.log(10)


def warnings_for(losses: list[float], caplog, **guard) -> list[str]:
    """Feeds LOSSES (one per training step) to a FlatStart on a 10-class net; returns its warnings."""
    callback = FlatStart(**{"patience_steps": 4, "every_n_steps": 2, "margin": 0.05, "stop": False, **guard})
    trainer = SimpleNamespace(global_step=0, loggers=[], strategy=SimpleNamespace(reduce_boolean_decision=lambda flag, all: flag))
    module = SimpleNamespace(net=SimpleNamespace(num_classes=10))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="alexnet.callbacks.flat_start"):
        for step, loss in enumerate(losses):
            trainer.global_step = step + 1  # at a batch's end the optimizer has stepped
            callback.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, step)
    return [r.getMessage() for r in caplog.records]


def test_a_stuck_loss_is_named_once_with_the_keys_that_help(caplog):
    [warning] = warnings_for([CHANCE + 0.01] * 12, caplog)  # flat throughout: one warning, not one per read
    assert warning.startswith(f"flat start: the training loss has averaged within 0.05 of ln(10) = {CHANCE:.3f}")
    assert "for 4 steps, up to step 4" in warning and "optim.lr" in warning and "model.init=caffe" in warning


def test_only_consecutive_flat_stretches_count(caplog):
    assert warnings_for([CHANCE] * 3 + [CHANCE + 0.5] + [CHANCE] * 3, caplog) == []  # steps 3-4 left the plateau
    assert warnings_for([CHANCE + 0.04, CHANCE - 0.04] * 3, caplog) != []  # within the margin either side
    # Batch losses scattering around ln(10) past the margin, as a net guessing uniformly gives: flat on average
    assert warnings_for([CHANCE + 0.12, CHANCE - 0.1] * 6, caplog) != []
    # A loss leaving the plateau slowly: its stretches' means drift out of the margin
    assert warnings_for([CHANCE - 0.03 * k for k in range(12)], caplog) == []
    assert warnings_for([CHANCE + 0.1] * 12, caplog) == []  # never within the margin
    assert warnings_for([CHANCE + 0.1] * 12, caplog, margin=0.2) != []
    assert warnings_for([CHANCE] * 12, caplog, patience_steps=14) == []  # not for long enough


def test_stop_true_ends_the_run_with_last_ckpt_saved(tmp_path):
    # lr 1e-9: the net cannot move. Its untrained loss on batches of 8 is ln(10) + 0-1.5 (the paper's
    # biases of 1 make fc8's logits spread), so the margin is wide here; on a real plateau the loss
    # sits at ln(classes) itself, within the default 0.05.
    stuck = [
        "+trainer.limit_train_batches=4",
        "optim.lr=1e-9",
        "callbacks.flat_start.patience_steps=4",
        "callbacks.flat_start.every_n_steps=2",
        "callbacks.flat_start.margin=2.0",
        "callbacks.flat_start.stop=true",
    ]
    run = tmp_path / "run"
    with pytest.raises(RunStopped) as stop:  # train.py prints it and exits with its code
        train_in_process(run, *toy(tmp_path / "data", 2, *stuck))
    last = run / "checkpoints" / "last.ckpt"
    assert stop.value.exit_code == ExitCode.FLAT_START
    assert f"saved {last}" in str(stop.value) and "flat start: " in str(stop.value)
    assert checkpoint(last)["global_step"] == 4  # the step at which the guard read its fourth flat step
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "flat_start" and summary["checkpoint"] == "checkpoints/last.ckpt"
    assert not (run / "csv").exists() and not (run / "tensorboard").exists()  # logger=none (TINY) writes no log folder
