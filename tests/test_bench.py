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


def test_end_to_end_row_from_a_small_store_in_both_decode_modes(tmp_path):
    """Fewer images than the timed steps need: the set is repeated, so timing never crosses an epoch."""
    from alexnet.bench import end_to_end
    from alexnet.data import synthetic
    from alexnet.data.prepare import prepare

    synthetic.generate(tmp_path / "raw", train_per_class=1, val_per_class=0, image_size=80, seed=0)
    prepare(tmp_path / "raw", tmp_path / "store", splits=["train"], workers=1, resize=76)
    setup = model.Setup(batch=16, crop=67, steps=2, warmup=1)  # 48 images from 10; resize 76
    for decode_on in ("loader", "device"):
        row = end_to_end.run(setup, str(tmp_path / "store"), num_workers=0, decode_on=decode_on)
        assert row["images_per_s"] > 0 and row["hours_90_epochs"] > 0, row
