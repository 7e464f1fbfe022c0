"""A corrupt file in a run folder is named and left out; it never stops the tables."""

import json
import subprocess
import sys

from conftest import ROOT


def write_run(folder, summary_text: str, experiment: str = "alexnet_paper") -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    choices:\n      experiment: {experiment}\n")
    (folder / "summary.json").write_text(summary_text)


def test_tables_name_corrupt_files_and_count_the_good_runs(tmp_path):
    out = tmp_path / "outputs"
    good = {
        "status": "finished",
        "experiment": "alexnet_paper",
        "seed": 1,
        "test/top1_err": 0.40,
        "test/top5_err": 0.18,
        "test_crops": 10,
    }
    write_run(out / "runs" / "good", json.dumps(good))
    write_run(out / "runs" / "cut", json.dumps(good)[:40])  # a write cut short (an old copy, a full disk)
    write_run(out / "runs" / "typed", json.dumps({**good, "seed": 2, "val/top1_err": "abc"}))  # edited by hand
    write_run(out / "runs" / "demo", json.dumps(good)[:40], experiment="demo")  # not a preset of the tables
    (out / "evals" / "e").mkdir(parents=True)
    (out / "evals" / "e" / "results.json").write_text('{"crops": 10, "ensemble": ')
    (out / "fig1" / "f").mkdir(parents=True)
    (out / "fig1" / "f" / "fig1.json").write_bytes(b"\xff\xfe not json")
    proc = subprocess.run(
        [sys.executable, "-m", "alexnet.evaluation.tables", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    table = (out / "tables" / "tables.md").read_text()
    assert "| 1 CNN | 40.7 | 40.0 | -0.7 | 18.2 | 18.0 | -0.2 |" in table  # the good run, counted alone
    assert f"{out}/runs/cut/summary.json: not a valid summary" in table  # listed as not counted, by name
    assert f"{out}/runs/typed/summary.json: not a valid summary (val/top1_err is 'abc', not a number)" in table
    assert f"{out}/runs/demo/summary.json: not a valid summary" in table  # whatever its preset
    for run in ("cut", "typed", "demo"):
        assert f"{out}/runs/{run}/summary.json: not a valid summary" in proc.stderr
    assert f"{out}/evals/e/results.json: unreadable, left out of the tables" in proc.stderr
    assert f"{out}/fig1/f/fig1.json: unreadable, left out of the tables" in proc.stderr
