"""The reported test error is never selected on the split it reports: the paper's presets test the
net training ended with (test_checkpoint=last); a best checkpoint tested on its own selection split
is flagged in summary.json and marked in the tables."""

import json
from pathlib import Path

import pytest
from conftest import compose_train, fixture_dir
from longrun import train_here

from alexnet.errors import ConfigError
from alexnet.evaluation import tables

# Two epochs of one training batch, one validation batch, one ten-crop test batch: best and last
# are different files (epoch000.ckpt or epoch001.ckpt, and last.ckpt).
TWO_EPOCHS = [
    "data.train_per_class=2",
    "data.val_per_class=1",
    "data.batch_size=8",
    "data.num_workers=0",
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=1",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "logger=none",
    "++figures=false",
]


@pytest.fixture(scope="module")
def summaries(request) -> dict[str, dict]:
    """One tiny run per choice, on the synthetic set (val is both the selection and the test split)."""
    tmp = fixture_dir(request, "tested")
    return {
        which: train_here(tmp / which, f"data.root={tmp}/synthetic", *TWO_EPOCHS, f"test_checkpoint={which}")
        for which in ("last", "best")
    }


def test_last_tests_the_net_training_ended_with(summaries):
    s = summaries["last"]
    assert s["test_checkpoint"] == "checkpoints/last.ckpt"  # relative to the run folder
    assert s["test_checkpoint_choice"] == "last" and s["test_split"] == "val"
    assert s["selected_on_test_split"] is False
    assert "test/top1_err" in s


def test_best_on_its_own_split_is_flagged(summaries):
    s = summaries["best"]
    assert s["test_checkpoint"] in ("checkpoints/epoch000.ckpt", "checkpoints/epoch001.ckpt")
    assert s["test_checkpoint_choice"] == "best" and s["test_split"] == "val"
    assert s["selected_on_test_split"] is True


def write_run(folder: Path, summary: dict) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      experiment: alexnet_paper\n")
    (folder / "summary.json").write_text(json.dumps({**summary, "experiment": "alexnet_paper", "run_dir": str(folder)}))


def row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


@pytest.mark.parametrize("which, marked", [("best", True), ("last", False)])
def test_tables_mark_a_number_selected_on_its_own_split(summaries, tmp_path, which, marked):
    """The paper's Table 2 (a run filed as alexnet_paper) and the measured table of its dataset."""
    write_run(tmp_path / "run", summaries[which])
    runs, evals, fig1 = tables.collect([tmp_path])
    text = tables.render(runs, evals, tmp_path / "tables", fig1)
    measured_top1 = row(text, "1 CNN").split(" | ")[2]
    assert measured_top1.endswith("†") is marked
    assert row(text, "alexnet_paper").count("†") == (2 if marked else 0)  # top-1 and top-5 of the measured table
    assert ("selected on its own split" in text) is marked


def test_the_paper_presets_and_the_demo_test_the_last_net():
    for preset in ("alexnet_paper", "alexnet_ilsvrc2010", "ablation_no_lrn", "alexnet_star_finetune", "demo"):
        assert compose_train(f"experiment={preset}").test_checkpoint == "last", preset


def test_an_unknown_choice_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="^test_checkpoint: expected one of best, last, got 'worst'$"):
        train_here(tmp_path / "run", f"data.root={tmp_path}/synthetic", "test_checkpoint=worst")
