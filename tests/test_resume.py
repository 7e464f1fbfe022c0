"""Exact resume: a run stopped after epoch k and resumed in its own folder ends bitwise equal to
the run that was never stopped (weights, momentum, lr schedule, counters, metrics); and with
trainer.deterministic=true two runs of one config are bitwise equal."""

import json
import shutil

import pytest
from conftest import fixture_dir, run_train, train_in_process
from longrun import checkpoint, prepare, same_tensors, tiny, toy

# patience 0: the plateau schedule cuts the lr at the first epoch without improvement, so a
# missed or doubled scheduler step shows; one loader worker: persistent workers are in play.
RECIPE = ["+trainer.limit_train_batches=2", "optim.lr_patience=0", "data.num_workers=1", "trainer.deterministic=true"]


@pytest.fixture(scope="module")
def runs(request):
    """The same 3-epoch run twice: once whole (keeping every epoch's checkpoint), once stopped
    after epoch 1 and resumed with the same command. The first part runs in a process of its own
    (`python train.py`): the resume and the repeat each cross a process boundary."""
    root = fixture_dir(request, "resume")
    data, whole, stopped = root / "data", root / "whole", root / "stopped"
    prepare(data)
    # ckpt_path=last from the first start: the same command starts a run and continues it.
    first = run_train(*tiny(data, stopped, 2, *RECIPE), "ckpt_path=last")
    assert "starting afresh" in first.stdout + first.stderr
    shutil.copy(stopped / "checkpoints" / "last.ckpt", root / "after_epoch_1.ckpt")
    train_in_process(whole, *toy(data, 3, *RECIPE), "++callbacks.model_checkpoint.save_top_k=-1")
    resumed = train_in_process(stopped, *toy(data, 3, *RECIPE), "ckpt_path=last")
    assert "Restored all states" in resumed.log
    return root


def test_stopped_after_epoch_1_and_resumed_is_bitwise_the_uninterrupted_run(runs):
    a, b = checkpoint(runs / "whole" / "checkpoints" / "last.ckpt"), checkpoint(runs / "stopped" / "checkpoints" / "last.ckpt")
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (2, 6)
    assert same_tensors(a["state_dict"], b["state_dict"])
    assert same_tensors(a["optimizer_states"], b["optimizer_states"])
    assert same_tensors(a["lr_schedulers"], b["lr_schedulers"])
    assert same_tensors(a["loops"], b["loops"])
    assert a["lr_schedulers"][0]["_last_lr"][0] < 0.002  # the schedule did act
    metrics = [json.loads((runs / r / "summary.json").read_text()) for r in ("whole", "stopped")]
    assert {k: v for k, v in metrics[0].items() if k.startswith(("train/", "val/"))} == {
        k: v for k, v in metrics[1].items() if k.startswith(("train/", "val/"))
    }


def test_deterministic_switch_repeats_a_run_bitwise(runs):
    # Two processes ran the first two epochs of the same config: the whole run (this one), and the stopped one.
    a, b = checkpoint(runs / "whole" / "checkpoints" / "epoch001.ckpt"), checkpoint(runs / "after_epoch_1.ckpt")
    assert a["global_step"] == b["global_step"] == 4
    assert same_tensors(a["state_dict"], b["state_dict"])
    assert same_tensors(a["optimizer_states"], b["optimizer_states"])
