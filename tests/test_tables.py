"""python -m alexnet.evaluation.tables: the paper's tables from run summaries and eval results,
failed runs listed, never averaged."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from alexnet.data.check import CROSS_SPLIT
from alexnet.evaluation import tables


def write_run(folder: Path, summary: dict | None, experiment: str = "alexnet_paper") -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    choices:\n      experiment: {experiment}\n")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps({**summary, "run_dir": str(folder)}))


def finished(experiment: str, top1: float, top5: float, seed: int = 0) -> dict:
    return {
        "status": "finished",
        "experiment": experiment,
        "seed": seed,
        "test/top1_err": top1,
        "test/top5_err": top5,
        "test_crops": 10,
    }


@pytest.fixture
def outputs(tmp_path) -> Path:
    out = tmp_path / "outputs"
    sweep = out / "multiruns" / "2026-01-01_00-00-00"
    write_run(sweep / "0", finished("alexnet_paper", 0.40, 0.18, seed=1))
    write_run(sweep / "1", finished("alexnet_paper", 0.42, 0.19, seed=2))
    # Not counted: a failed job (its numbers must not reach the mean), an untested one, one still running.
    write_run(
        sweep / "2",
        {
            "status": "failed",
            "experiment": "alexnet_paper",
            "seed": 3,
            "error": "RuntimeError: CUDA out of memory",
            "test/top1_err": 0.99,
            "test/top5_err": 0.99,
        },
    )
    write_run(sweep / "3", {"status": "finished", "experiment": "alexnet_paper", "seed": 4, "val/top1_err": 0.01})
    write_run(sweep / "4", None)
    ablations = out / "multiruns" / "2026-01-02_00-00-00"
    write_run(ablations / "0", finished("ablation_no_lrn", 0.425, 0.197))
    write_run(ablations / "1", finished("ablation_1gpu", 0.43, 0.20))
    write_run(out / "runs" / "star", finished("alexnet_star_finetune", 0.39, 0.165))
    results = {
        "crops": 10,
        "split": "val",
        "ensemble": {"size": 5, "top1_err": 0.383, "top5_err": 0.166},
        "members": [{"experiment": "alexnet_paper", "checkpoint": f"m{i}.ckpt"} for i in range(5)],
    }
    write_run(out / "runs" / "demo", {"status": "failed", "experiment": "demo", "error": "not a table's run"})
    fig1 = {
        "epochs_to_target": {"relu": 5.5, "tanh": None},
        "epochs_run": {"relu": 5.5, "tanh": 30.0},
        "speedup": 30 / 5.5,
        "speedup_is_lower_bound": True,
        "common_level": {"train_err": 0.3, "epochs": {"relu": 3.0, "tanh": 12.0}, "speedup": 4.0},
    }
    (out / "fig1" / "run").mkdir(parents=True)
    (out / "fig1" / "run" / "fig1.json").write_text(json.dumps(fig1))
    (out / "evals" / "five").mkdir(parents=True)
    (out / "evals" / "five" / "results.json").write_text(json.dumps(results))
    return out


def rows_of(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows.setdefault(cells[0], cells)
    return rows


def test_tables_show_paper_measured_and_difference(outputs, tmp_path):
    runs, evals, fig1 = tables.collect([outputs])
    text = tables.render(runs, evals, tmp_path / "tables", fig1)
    rows = rows_of(text)
    # 1 CNN: mean of the two finished seeds (40.0, 42.0), not of the failed one (99.0).
    assert rows["1 CNN"] == ["1 CNN", "40.7", "41.0", "+0.3", "18.2", "18.5", "+0.3", "", "", "", "2"]
    assert rows["5 CNNs"][1:4] == ["38.1", "38.3", "+0.2"] and rows["5 CNNs"][-1] == "1"
    assert rows["1 CNN*"][1:7] == ["39.0", "39.0", "+0.0", "16.6", "16.5", "-0.1"]
    assert rows["7 CNNs*"][2] == "" and rows["SIFT + FVs [7]"][7] == "26.2"
    assert rows["CNN"][2] == "" and rows["CNN"][-1] == "0"  # Table 1: no ILSVRC-2010 run
    # Ablations: 42.5 - 41.0 = 1.5 points against the paper's 1.4.
    assert rows["ablation_no_lrn"][2:8] == ["1.4", "1.5", "+0.1", "1.2", "1.2", "+0.0"]
    assert rows["ablation_1gpu"][2:5] == ["1.7", "2.0", "+0.3"] and rows["ablation_1gpu"][-1] == "1/2"
    assert rows["ablation_no_dropout"][3] == "" and rows["ablation_no_dropout"][-1] == "0/2"


def test_failed_and_incomplete_runs_are_listed_not_counted(outputs, tmp_path):
    runs, evals, fig1 = tables.collect([outputs])
    text = tables.render(runs, evals, tmp_path / "tables", fig1)
    listed = text.split("Runs not counted")[1]
    assert "RuntimeError: CUDA out of memory" in listed and "| failed |" in listed
    assert "incomplete (no summary.json)" in listed
    assert "finished without test metrics" in listed
    assert "not a table's run" not in listed  # a failed demo run is no table's business
    with open(tmp_path / "tables" / "not_counted.csv") as f:
        assert len(list(csv.reader(f))) == 1 + 3


def test_figure1_row(outputs, tmp_path):
    runs, evals, fig1 = tables.collect([outputs])
    row = rows_of(tables.render(runs, evals, tmp_path / "tables", fig1))[str(outputs / "fig1" / "run")]
    assert row[1:] == ["5.50", "> 30 (cap)", ">= 5.5x", "30.0%: 3.00 vs 12.00 epochs, 4.0x"]


def test_csv_has_the_markdown_rows(outputs, tmp_path):
    runs, evals, fig1 = tables.collect([outputs])
    tables.render(runs, evals, tmp_path / "tables", fig1)
    with open(tmp_path / "tables" / "table2.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["Model", "Top-1 (val) paper", "measured", "diff"]
    assert [r[0] for r in rows[1:]] == ["SIFT + FVs [7]", "1 CNN", "5 CNNs", "1 CNN*", "7 CNNs*"]
    assert {"table1.csv", "table2.csv", "ablations.csv", "not_counted.csv", "tables.md"} <= {
        p.name for p in (tmp_path / "tables").iterdir()
    }


def test_tables_command(outputs, tmp_path):
    env_free = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no WANDB_API_KEY: W&B is skipped, not waited for
    proc = subprocess.run(
        [sys.executable, "-m", "alexnet.evaluation.tables", str(outputs), "--wandb", "me/alexnet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env_free,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no WANDB_API_KEY" in proc.stderr
    assert "## Table 2" in proc.stdout and (outputs / "tables" / "tables.md").exists()


def imagenette_run(folder: Path, experiment: str, seed: int, top1: float, top5: float, root: Path) -> None:
    """A finished run as train.py leaves it with data=imagenette: Hydra's data choice, the root in its config, its overrides."""
    overrides = [
        f"experiment={experiment}",
        f"seed={seed}",
        "data=imagenette",
        "data.resize=76",
        "trainer.max_epochs=12",
        "logger=none",
        "figures=false",
    ]
    write_run(folder, {**finished(experiment, top1, top5, seed), "overrides": overrides}, experiment)
    (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\ndata:\n  root: {root}\n")
    choices = f"experiment: {experiment}\n      data: imagenette"
    (folder / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    choices:\n      {choices}\n")


def test_a_three_seed_sweep_on_another_dataset_fills_its_own_table(outputs, tmp_path):
    sweep, root = outputs / "multiruns" / "imagenette", tmp_path / "imagenette-mini"
    jobs = [
        ("alexnet_paper", 1, 0.60),
        ("alexnet_paper", 2, 0.62),
        ("alexnet_paper", 3, 0.64),
        ("ablation_no_dropout", 1, 0.70),
        ("ablation_no_dropout", 2, 0.71),
        ("ablation_no_dropout", 3, 0.72),
    ]
    for job, (experiment, seed, top1) in enumerate(jobs):
        imagenette_run(sweep / str(job), experiment, seed, top1, top1 / 3, root)
    # The same preset with another setting (more epochs) is another table, never averaged in.
    imagenette_run(sweep / "9", "alexnet_paper", 1, 0.10, 0.05, root)
    longer = sweep / "9" / "summary.json"
    longer.write_text(longer.read_text().replace("max_epochs=12", "max_epochs=90"))
    runs, evals, fig1 = tables.collect([outputs])
    text = tables.render(runs, evals, tmp_path / "tables", fig1)
    rows = rows_of(text)
    assert rows["1 CNN"][2] == "41.0" and rows["1 CNN"][-1] == "2"  # the paper's table keeps its ILSVRC runs only
    # The root as the heading shows it: beside the project (a clone in /tmp) it is relative.
    shown = tables.by_dataset.shown_root(str(root))
    measured = text.split(f"## Measured on imagenette ({shown}): ten-crop test error (%), 6 finished runs")[1].split("## ")[0]
    assert "`data.resize=76 trainer.max_epochs=12`" in measured  # the setting, without seed, preset, logger, figures
    table = rows_of(measured)
    assert table["alexnet_paper"][1:] == ["3", "1, 2, 3", "62.0 ± 2.0 (60.0-64.0)", "20.7 ± 0.7 (20.0-21.3)", "", "", ""]
    # 71 - 62 = 9 points; standard error sqrt(1/3 + 4/3) = 1.3.
    no_dropout = ["3", "1, 2, 3", "71.0 ± 1.0 (70.0-72.0)", "23.7 ± 0.3 (23.3-24.0)", "+9.0 ± 1.3", "+3.0 ± 0.4", "- / -"]
    assert table["ablation_no_dropout"][1:] == no_dropout
    assert tables.by_dataset.delta([0.5, 0.5004], [0.5002, 0.5002]) == "+0.0 ± 0.0"  # never "-0.0"
    assert "1 finished run\n" in text and "`data.resize=76 trainer.max_epochs=90`" in text
    assert len(list((tmp_path / "tables").glob("measured_imagenette_*.csv"))) == 2


def test_reference_rows_name_their_protocol_and_source(outputs, tmp_path):
    runs, evals, fig1 = tables.collect([outputs])
    rows = rows_of(tables.render(runs, evals, tmp_path / "tables", fig1))
    assert rows["Caffe bvlc_alexnet"][1:3] == ["42.9", "19.8"] and "centre 227 crop" in rows["Caffe bvlc_alexnet"][3]
    assert rows["torchvision alexnet"][1:3] == ["43.48", "20.93"] and "acc@1 56.522" in rows["torchvision alexnet"][4]
    assert rows["paper: 1 CNN"][1:3] == ["40.7", "18.2"] and "ten 224 crops" in rows["paper: 1 CNN"][3]


def test_run_names_and_table_settings_leave_out_the_same_logistics():
    """One list (alexnet.overrides.LOGISTICS): a cache folder or the LRN kernel neither names a W&B
    run nor splits the tables' settings; the budget (trainer.*) splits a setting but names no run."""
    from types import SimpleNamespace

    from alexnet.evaluation.by_dataset import setting_of
    from alexnet.loggers.wandb_logger import run_name

    overrides = ["model.lrn=false", "seed=3", "data.cache_dir=/c", "model.lrn_compiled=true", "logger=wandb"]
    overrides.append("trainer.max_epochs=5")
    hydra = SimpleNamespace(runtime=SimpleNamespace(choices={"logger": "wandb"}), overrides=SimpleNamespace(task=overrides))
    assert run_name(hydra) == "no_lrn-seed3"
    assert setting_of({"overrides": overrides}) == ("model.lrn=false", "trainer.max_epochs=5")


def test_an_error_measured_on_splits_that_share_images_is_marked(outputs, tmp_path):
    shared = {**finished("ablation_no_lrn", 0.425, 0.197), CROSS_SPLIT: 3}
    (outputs / "multiruns" / "2026-01-02_00-00-00" / "0" / "summary.json").write_text(json.dumps(shared))
    runs, evals, fig1 = tables.collect([outputs])
    text = tables.render(runs, evals, tmp_path / "tables", fig1)
    rows = rows_of(text)
    assert rows["ablation_no_lrn"][3] == "1.5‡" and rows["ablation_no_lrn"][6] == "1.2‡"
    assert rows["1 CNN"][2] == "41.0" and rows["ablation_1gpu"][3] == "2.0"  # their runs' splits share none
    assert text.rstrip().endswith(tables.by_dataset.DUPLICATES_NOTE)
    clean = tables.render(*tables.collect([outputs / "runs"])[:2], tmp_path / "clean")
    assert "‡" not in clean
