"""A data root that cannot train: named before any work; a run that trained nothing is never "finished"."""

import json

import pytest
from longrun import TINY, train_here
from PIL import Image

from alexnet.errors import ConfigError
from alexnet.evaluation import tables


@pytest.mark.parametrize(
    "images, message",
    [
        ({}, "data.root: no 'train' folder"),  # the root exists, empty
        ({"train/a": 1, "train/b": 1}, "data.root: no 'val' folder"),  # half there
        ({"train/a": 1, "train/b": 0, "val/a": 1, "val/b": 1}, "Found no valid file for the classes b"),
        ({"train/a": 1, "train/b": 1, "val/a": 1, "val/b": 1}, "data.num_classes is 3 but .* has 2 class"),
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
