"""train.py end to end: real Lightning Trainer, real Hydra (single runs and multirun), real JPEGs."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import ONE_BATCH, run_train


def tiny_data(tmp_path: Path) -> list[str]:
    return [f"data.root={tmp_path}/synthetic", "data.train_per_class=8", "data.val_per_class=4"]


def test_fast_dev_run_through_train_py(tmp_path):
    run = tmp_path / "run"
    proc = run_train("debug=fdr", *tiny_data(tmp_path), f"hydra.run.dir={run}")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert 0.0 <= summary["val/top1_err"] <= 1.0 and 0.0 <= summary["val/top5_err"] <= summary["val/top1_err"]
    assert "train/loss" in summary
    assert "final metrics" in proc.stdout and f"run folder: {run}" in proc.stdout
    assert (run / ".hydra" / "config.yaml").exists()


@pytest.mark.parametrize(
    "override",
    [
        "model.lrn=false",
        "model=alexnet_1gpu",
        "model.overlap_pool=false",
        "model.dropout=0",
        "model.activation=tanh",
        "data.pca_lighting=false",
        "model.extra_conv=true",
    ],
)
def test_each_ablation_runs(tmp_path, override):
    run = tmp_path / "run"
    run_train("debug=fdr", *tiny_data(tmp_path), override, f"hydra.run.dir={run}")
    key, value = override.split("=")
    cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    if key == "model":
        assert cfg["model"]["columns"] == 1
    else:
        group, name = key.split(".")
        assert str(cfg[group][name]).lower() == value


def test_multirun_puts_each_job_in_its_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    run_train("-m", "debug=fdr", *tiny_data(tmp_path), "model.lrn=true,false", f"hydra.sweep.dir={sweep}")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.name for j in jobs] == ["0", "1"]
    lrn = [yaml.safe_load((j / ".hydra" / "config.yaml").read_text())["model"]["lrn"] for j in jobs]
    assert lrn == [True, False]
    assert all(json.loads((j / "summary.json").read_text())["status"] == "finished" for j in jobs)


def test_checkpoints_are_written_and_reload_with_their_architecture(tmp_path):
    run = tmp_path / "run"
    run_train(
        *tiny_data(tmp_path),
        "trainer.max_epochs=1",
        "model=alexnet_1gpu",
        "data.batch_size=16",
        "data.num_workers=0",
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={run}",
    )
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and "epoch000.ckpt" in ckpts
    from alexnet.training.module import LitAlexNet

    module = LitAlexNet.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert module.net.columns == 1 and module.net.crop_size == 67
    metrics = (run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {
        "train/loss",
        "val/top1_err",
        "val/top5_err",
        "test/top1_err",
        "test/top5_err",
        "lr-SGD/weights",
        "lr-SGD/biases",
    } <= set(metrics)


def test_seed_makes_runs_repeatable(tmp_path):
    losses = []
    for i in range(2):
        run = tmp_path / f"run{i}"
        run_train("debug=fdr", *tiny_data(tmp_path), "seed=7", "data.num_workers=1", f"hydra.run.dir={run}")
        losses.append(json.loads((run / "summary.json").read_text())["train/loss"])
    assert losses[0] == losses[1]


@pytest.mark.slow
def test_default_run_learns_far_above_chance(tmp_path):
    """The README's `python train.py`, on a fresh copy of the built-in dataset: chance is 90% top-1 error."""
    run = tmp_path / "run"
    run_train(f"data.root={tmp_path}/synthetic", f"hydra.run.dir={run}", "model.lrn_compiled=true", timeout=900)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val/top1_err"] < 0.5, summary
    assert summary["test/top1_err"] < 0.5, summary


@pytest.mark.parametrize("logger", ["tensorboard", "none", "csv"])
def test_logger_options_run(tmp_path, logger):
    run = tmp_path / "run"
    # fast_dev_run would swap the loggers for a dummy: one real (tiny) epoch instead.
    run_train(*tiny_data(tmp_path), *ONE_BATCH, f"logger={logger}", f"hydra.run.dir={run}")
    assert (run / "tensorboard").is_dir() == (logger == "tensorboard")
    assert (run / "csv").is_dir() == (logger == "csv")
