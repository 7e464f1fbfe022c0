"""A data root that cannot train: named before any work; a run that trained nothing is never "finished";
a damaged store is named, and a damaged statistics cache named and computed again."""

import json
import re

import pytest
import torch
from builders import data_module
from longrun import TINY, train_here
from PIL import Image

from alexnet.data.prepare import prepare
from alexnet.errors import ConfigError
from alexnet.evaluation import tables
from bad_input.test_checkpoints import image_folder


@pytest.mark.parametrize(
    "images, message",
    [
        ({}, "data.root: no 'train' folder"),  # the root exists, empty
        ({"train/a": 1, "train/b": 1}, "data.root: no 'val' folder"),  # half there
        ({"train/a": 1, "train/b": 0, "val/a": 1, "val/b": 1}, "Found no valid file for the classes b"),
        ({"train/a": 1, "train/b": 1, "val/a": 1, "val/b": 1}, "data.num_classes is 3 but .* has 2 class"),
        # A val split without some classes: labels are positions, so they must match; named.
        (
            {"train/a": 1, "train/b": 1, "train/c": 1, "val/a": 1, "val/d": 1},
            r"data.root: the 'val' split of .* has other classes than its 'train' split: "
            r"it lacks 2 of them \(b, c\); it has 1 more \(d\)$",
        ),
    ],
)
def test_broken_data_roots_are_config_errors(tmp_path, images, message):
    root = tmp_path / "data"
    root.mkdir()
    for folder, count in images.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (80, 80), (i, 90, 160)).save(root / folder / f"{i}.JPEG")
    with pytest.raises(ConfigError, match=message):
        train_here(
            tmp_path / "run",
            "data=imagefolder",
            f"data.root={root}",
            "data.num_classes=3",
            "data.resize=76",
            "data.crop_size=67",
            *TINY[2:],
        )


def test_training_set_smaller_than_one_batch_stops_before_fitting(tmp_path):
    # 10 images, batches of 16: every batch is a full one, so not one step could be trained.
    run = tmp_path / "run"
    with pytest.raises(
        ConfigError,
        match=r"^data.batch_size: 16 is more than the 10 training images in the 'train' split of "
        f"{tmp_path}/synthetic: .*Lower data.batch_size or add training images$",
    ):
        train_here(run, f"data.root={tmp_path}/synthetic", *TINY, "data.train_per_class=1", "data.batch_size=16", "test=true")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "data.batch_size: 16" in summary["error"]
    assert not any(k.startswith("test/") for k in summary)  # no untrained test errors
    assert not (run / "checkpoints").exists()


def test_a_fit_without_a_training_step_is_not_finished(tmp_path):
    # Enough images, but no batch reaches training: Lightning returns as from a finished fit.
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="^trainer: no training step was taken .*the run is not finished$"):
        train_here(run, f"data.root={tmp_path}/synthetic", *TINY, "+trainer.limit_train_batches=0", "trainer.max_epochs=1")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert not tables.counted(summary)  # the tables list it as not counted, never average it in


def test_a_damaged_store_index_is_named(tmp_path):
    store = tmp_path / "store"
    prepare(image_folder(tmp_path / "src", ["a", "b"]), store, workers=1, shard_size=2, resize=76)
    index = store / "index.json"
    index.write_text(index.read_text()[:60])  # a copy cut short
    with pytest.raises(ConfigError, match=f"^{index}: not valid JSON .*: the store is damaged; prepare it again"):
        data_module(store, resize=76, crop_size=67).setup("fit")


def test_a_corrupt_statistics_cache_is_named_and_computed_again_and_a_used_one_says_how_old(tmp_path, caplog):
    root = image_folder(tmp_path / "data", ["a", "b"], per_class=2)

    def mean_image():
        datamodule = data_module(root, resize=76, crop_size=67, batch_size=2, num_workers=0, stats_images=0)
        datamodule.setup("fit")
        return datamodule.augment.mean.clone()

    computed = mean_image()
    [cache] = root.glob(".stats_*.pt")
    cache.write_bytes(cache.read_bytes()[:100])  # cut short
    with caplog.at_level("INFO"):
        assert torch.equal(mean_image(), computed)  # computed again
        assert f"{cache}: unreadable training-set statistics cache (" in caplog.text
        caplog.clear()
        assert torch.equal(mean_image(), computed)  # the rewritten cache
    # The cache's key has the files' modification times, not their pixels: where it is used, say so.
    assert re.search(
        f"training-set statistics .* from the cache {re.escape(str(cache))}, written [0-9]+ s ago; its key is the 'train' "
        "files' names, sizes and modification times, .* \\(cp -p, rsync -t\\) would still use it",
        caplog.text,
    )
