"""The benchmark commands: their rows are derived correctly from the rounds they time, agree with
each other and reach the printed table (the measured numbers themselves go in docs/, not in asserts)."""

import math
import statistics

import pytest
import torch

from alexnet.bench import model

NAMES = [
    "LightningModule train step",
    "bare PyTorch loop, same net",
    "torchvision alexnet, bare loop",
    "Lightning overhead",
    "this net's step speed / torchvision's",
]


def test_rows_are_the_median_round_with_its_range_and_the_median_per_round_ratio(monkeypatch):
    """Given the seconds per step of three rounds, the rows hold exactly the medians and ranges
    they promise (the rates of a round are batch / seconds; the ratios are taken round by round)."""
    from alexnet.bench import rounds

    seconds = {"lightning": [0.5, 0.2, 0.3], "bare": [0.4, 0.1, 0.25], "torchvision": [0.6, 0.3, 0.5]}
    monkeypatch.setattr(rounds, "alternate", lambda s, module, loops: seconds)
    rows = model.run(model.Setup(batch=4, crop=67, rounds=3))
    assert [r["name"] for r in rows] == NAMES
    for row, key in zip(rows, ("lightning", "bare", "torchvision")):
        assert row["images_per_s"] == pytest.approx(4 / statistics.median(seconds[key]))
        assert row["range"] == pytest.approx((4 / max(seconds[key]), 4 / min(seconds[key])))
    # Per round 1.25, 2.0, 1.2: the median round, not the ratio of the medians (1.2).
    assert rows[3]["overhead"] == pytest.approx(0.25)
    assert rows[3]["value"] == "+25.0% (rounds +20.0% to +100.0%)"
    assert rows[4]["speed_ratio"] == pytest.approx(2.0)  # torchvision / bare: 1.5, 3.0, 2.0
    assert rows[4]["value"] == "2.00x (rounds 1.50x to 3.00x)"
    # The same net in both: the same FLOPs per image; torchvision's differs and is not given.
    assert rows[0]["tflops"] / rows[0]["images_per_s"] == pytest.approx(rows[1]["tflops"] / rows[1]["images_per_s"])
    assert "tflops" not in rows[2]


def test_bench_command_times_all_three_and_prints_consistent_rows(monkeypatch, capsys):
    """`python -m alexnet.bench --skip-data`, one round: the Lightning step, the bare loop and
    torchvision's net are each timed, and the ratios rows are those rates' ratios."""
    import alexnet.bench.__main__ as whole

    monkeypatch.setenv("COLUMNS", "200")  # rich's table, unwrapped
    measured, run = [], model.run
    monkeypatch.setattr(model, "run", lambda s: measured.append(run(s)) or measured[-1])
    whole.main(["--skip-data", "--crop", "67", "--batch", "4", "--steps", "1", "--warmup", "1", "--rounds", "1"])
    (rows,) = measured
    assert [r["name"] for r in rows] == NAMES
    rate = {key: row["images_per_s"] for key, row in zip(("lightning", "bare", "torchvision"), rows)}
    for row in rows[:3]:
        assert math.isfinite(row["images_per_s"]) and row["range"] == (row["images_per_s"], row["images_per_s"])
    assert rows[3]["overhead"] == pytest.approx(rate["bare"] / rate["lightning"] - 1)
    assert rows[4]["speed_ratio"] == pytest.approx(rate["bare"] / rate["torchvision"])
    printed = capsys.readouterr().out
    for row in rows:
        assert row["name"] in printed
    for row in rows[:3]:
        assert f"{row['images_per_s']:,.1f}" in printed
    assert rows[3]["value"].split(" ")[0] in printed and rows[4]["value"].split(" ")[0] in printed


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


def test_per_layer_profile_covers_the_step(monkeypatch, capsys):
    """`python -m alexnet.bench.model --profile`: every layer and phase of the step, forward and
    backward found for each, and the printed shares add up to the whole step."""
    from alexnet.bench import layers

    monkeypatch.setenv("COLUMNS", "200")  # rich's table, unwrapped
    measured, profile = [], layers.profile
    monkeypatch.setattr(layers, "profile", lambda s: measured.append(profile(s)) or measured[-1])
    model.main(["--profile", "--batch", "2", "--crop", "67", "--steps", "1", "--warmup", "1"])
    (rows,) = measured
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
    printed = capsys.readouterr().out
    total = sum(r["forward"] + r["backward"] for r in rows)
    assert all(r["name"] in printed for r in rows) and f"{total:,.1f}" in printed.split("whole step")[1]


def test_help_lists_every_option_the_docstrings_advertise(capsys):
    import re

    import alexnet.bench.__main__ as whole

    for command in (whole, model):
        advertised = set(re.findall(r"(--[a-z][a-z-]*)", command.__doc__))
        with pytest.raises(SystemExit) as done:
            command.main(["--help"])
        assert done.value.code == 0
        printed = capsys.readouterr().out
        missing = [option for option in advertised if option not in printed]
        assert not missing and len(advertised) >= 8, (command.__name__, missing)


def test_end_to_end_row_from_a_small_store_in_both_decode_modes(tmp_path):
    """Fewer images than the timed steps need: the set is repeated, so timing never crosses an epoch;
    the 90-epoch hours are the measured rate's."""
    from alexnet.bench import end_to_end
    from alexnet.data import synthetic
    from alexnet.data.prepare import prepare

    synthetic.generate(tmp_path / "raw", train_per_class=1, val_per_class=0, image_size=80, seed=0)
    prepare(tmp_path / "raw", tmp_path / "store", splits=["train"], workers=1, resize=76)
    setup = model.Setup(batch=16, crop=67, steps=2, warmup=1, rounds=1)  # 64 images from 10; resize 76
    for decode_on, said in (("loader", "decoded in the workers"), ("device", "decoded on the device")):
        row = end_to_end.run(setup, str(tmp_path / "store"), num_workers=0, decode_on=decode_on)
        assert row["name"] == f"end to end from {tmp_path / 'store'} (0 workers, {said})", row
        assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0, row
        assert row["hours_90_epochs"] == pytest.approx(90 * end_to_end.IMAGENET_TRAIN_IMAGES / row["images_per_s"] / 3600)


def test_loader_from_the_store_vs_from_s3_on_loopback_gives_both_rows(tmp_path, monkeypatch, capsys):
    """`python -m alexnet.bench.data --s3`, one round of one epoch: both rows measured and printed,
    every S3 round fetching every shard its epoch reads (a cold cache), the local one none."""
    pytest.importorskip("moto")
    import tempfile

    from alexnet.bench import data as data_bench
    from alexnet.data import synthetic
    from alexnet.data.prepare import prepare

    synthetic.generate(tmp_path / "raw", train_per_class=2, val_per_class=0, image_size=80, seed=0)
    prepare(tmp_path / "raw", tmp_path / "store", splits=["train"], workers=1, resize=76, shard_size=4)  # 5 shards
    monkeypatch.setenv("COLUMNS", "250")  # rich's table, unwrapped
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the bench's caches, where the test can see them
    argv = ["--images", str(tmp_path / "raw"), "--store", str(tmp_path / "store"), "--s3", "--rounds", "1"]
    threads = torch.get_num_threads()
    local, s3, ratio = data_bench.main([*argv, "--batch-size", "8"])["s3"]  # 2 batches an epoch
    assert torch.get_num_threads() == threads  # its one thread is put back: the model rows come after it
    for row in (local, s3):
        assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0 and row["wall_images_per_s"] > 0, row
        assert row["range"] == (row["images_per_s"], row["images_per_s"])  # one round
    # streamed (data.stream's default for a URL): the epoch's 16 images are 4 whole shards in a row;
    # the last shard, the dropped partial batch's, is not read
    assert s3["shards_fetched"] == [4] and local["shards_fetched"] == [0]
    assert ratio["cpu_ratio"] > 0 and "16 images a round" in ratio["value"]
    printed = " ".join(capsys.readouterr().out.split())
    assert "data.store=s3:// on 127.0.0.1" in printed and "not a cloud number" in printed
    assert f"{s3['images_per_s']:,.1f}" in printed and f"{local['images_per_s']:,.1f}" in printed
    assert not list(tmp_path.glob("alexnet-bench-s3-*"))
