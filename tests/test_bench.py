"""The benchmark command runs and reports every row (its numbers go in the README, not in asserts)."""

import subprocess
import sys

from alexnet.bench import model


def test_model_step_benchmark_reports_lightning_bare_and_torchvision():
    rows = model.run(model.Setup(batch=4, crop=67, steps=1, warmup=1))
    names = [r["name"] for r in rows]
    assert names == ["LightningModule train step", "bare PyTorch loop, same net", "torchvision alexnet, bare loop", "Lightning overhead"]
    assert all(r["images_per_s"] > 0 for r in rows[:3])


def test_bench_command_prints_its_table():
    proc = subprocess.run(
        [sys.executable, "-m", "alexnet.bench", "--skip-data", "--crop", "67", "--batch", "4", "--steps", "1", "--warmup", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Lightning overhead" in proc.stdout and "bare PyTorch loop" in proc.stdout
