"""The benchmark command runs and reports every row (its numbers go in docs/benchmarks.md, not in asserts)."""

import subprocess
import sys

from alexnet.bench import model


def test_model_step_benchmark_reports_lightning_bare_and_torchvision():
    rows = model.run(model.Setup(batch=4, crop=67, steps=1, warmup=1, rounds=2))
    names = [r["name"] for r in rows]
    assert names == [
        "LightningModule train step",
        "bare PyTorch loop, same net",
        "torchvision alexnet, bare loop",
        "Lightning overhead",
        "this net's step speed / torchvision's",
    ]
    for r in rows[:3]:
        low, high = r["range"]
        assert 0 < low <= r["images_per_s"] <= high
    assert rows[3]["overhead"] > -1 and rows[4]["speed_ratio"] > 0


def test_rounds_alternate_after_a_common_warm_up():
    """Lightning's steps A, then one round of each bare loop, B C, A B C ...; the Trainer's steps
    are the callback's clock, so no Trainer is needed to check the order."""
    from alexnet.bench.rounds import Alternate

    log = []

    class Loop:
        def __init__(self, name):
            self.name = name

        def seconds_per_step(self, steps):
            log.append((self.name, steps))
            return 1.0

    s = model.Setup(steps=2, warmup=3, rounds=2)
    timer = Alternate(s, {"bare": Loop("B"), "tv": Loop("C")})
    for step in range(s.warmup + s.rounds * s.steps):
        log.append("A")
        timer.on_train_batch_end(None, None, None, None, step)
    assert log == ["A"] * 3 + [("B", 3), ("C", 3)] + (["A"] * 2 + [("B", 2), ("C", 2)]) * 2
    assert [len(v) for v in timer.seconds.values()] == [2, 2, 2]


def test_per_layer_profile_covers_the_step(capsys):
    from alexnet.bench import layers

    rows = layers.profile(model.Setup(batch=2, crop=67, steps=1, warmup=1))
    names = [r["name"] for r in rows]
    for part in (
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "LRN (norm1, norm2)",
        "max pooling",
        "fc6",
        "fc7",
        "fc8",
        layers.PHASES["loss"],
        layers.PHASES["optimizer"],
        layers.PHASES["augment"],
    ):
        assert part in names, part
    by_name = {r["name"]: r for r in rows}
    for part in ("conv1", "LRN (norm1, norm2)", "fc8", layers.PHASES["loss"]):  # forward and backward both found
        assert by_name[part]["forward"] > 0 and by_name[part]["backward"] > 0, by_name[part]
    assert all(r["forward"] >= 0 and r["backward"] >= 0 for r in rows)
    model.main(["--profile", "--batch", "2", "--crop", "67", "--steps", "1", "--warmup", "1"])
    out = capsys.readouterr().out
    assert "LRN" in out and "whole step" in out


def test_help_lists_every_option_the_docstrings_advertise():
    import re

    import alexnet.bench.__main__ as whole

    for module, prog in ((whole, "alexnet.bench"), (model, "alexnet.bench.model")):
        advertised = set(re.findall(r"(--[a-z][a-z-]*)", module.__doc__))
        proc = subprocess.run([sys.executable, "-m", prog, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        missing = [option for option in advertised if option not in proc.stdout]
        assert not missing and len(advertised) >= 8, (prog, missing)


def test_bench_command_prints_its_table():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet.bench",
            "--skip-data",
            "--crop",
            "67",
            "--batch",
            "4",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--rounds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
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
    setup = model.Setup(batch=16, crop=67, steps=2, warmup=1, rounds=1)  # 64 images from 10; resize 76
    for decode_on in ("loader", "device"):
        row = end_to_end.run(setup, str(tmp_path / "store"), num_workers=0, decode_on=decode_on)
        assert row["images_per_s"] > 0 and row["hours_90_epochs"] > 0, row
