"""Bad input ends in one clear line naming the key, folder or checkpoint, never a traceback."""

from pathlib import Path

import pytest
import torch
from conftest import compose_train, run_train
from longrun import TINY, train_here
from PIL import Image

from alexnet.errors import ConfigError
from alexnet.training.module import LitAlexNet


def lightning_checkpoint(path, **model) -> str:
    """A checkpoint laid out as Lightning writes one (weights and hyper-parameters) for a given net."""
    module = LitAlexNet(model={**compose_train().model, "crop_size": 67, "num_classes": 10, **model})
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0, "global_step": 1}, path)
    return str(path)


def test_missing_data_root_exits_with_one_line(tmp_path):
    proc = run_train("data=imagefolder", f"data.root={tmp_path}/nowhere", "data.num_classes=10", *TINY[2:],
                     f"hydra.run.dir={tmp_path}/run", check=False)
    assert proc.returncode == 2
    assert f"config error: data.root: folder {tmp_path}/nowhere does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("images, message", [
    ({}, "data.root: no 'train' folder"),                                      # the root exists, empty
    ({"train/a": 1, "train/b": 1}, "data.root: no 'val' folder"),              # half there
    ({"train/a": 1, "train/b": 0, "val/a": 1, "val/b": 1}, "Found no valid file for the classes b"),
    ({"train/a": 1, "train/b": 1, "val/a": 1, "val/b": 1}, "data.num_classes is 3 but .* has 2 class"),
])
def test_broken_data_roots_are_config_errors(tmp_path, images, message):
    root = tmp_path / "data"
    root.mkdir()
    for folder, count in images.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (80, 80), (i, 90, 160)).save(root / folder / f"{i}.JPEG")
    with pytest.raises(ConfigError, match=message):
        train_here(tmp_path / "run", "data=imagefolder", f"data.root={root}", "data.num_classes=3", "data.resize=76",
                   "data.crop_size=67", *TINY[2:])


def test_truncated_checkpoint_exits_with_one_line(tmp_path):
    good = lightning_checkpoint(tmp_path / "good.ckpt")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(Path(good).read_bytes()[:1_000_000])  # what a crash mid-copy leaves
    proc = run_train(f"data.root={tmp_path}/synthetic", *TINY, f"ckpt_path={cut}", f"hydra.run.dir={tmp_path}/run", check=False)
    assert proc.returncode == 2
    assert f"config error: ckpt_path: {cut} is not a readable checkpoint (truncated or corrupt?" in proc.stderr
    assert "other checkpoints beside it: good.ckpt" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("model, override, message", [
    ({"columns": 1}, "model.columns=2",
     (r"is from another architecture .*model.columns=1 there, 2 here; "
      r"net.features.conv1.weight: \(48, 3, 11, 11\) there, \(96, 3, 11, 11\) here")),
    ({"extra_conv": True}, "model.extra_conv=false", "is from another architecture .*unexpected net.features.conv6.weight"),
    ({"num_classes": 1000}, "data.num_classes=10", "has 1000 classes \\(fc8\\), this run has data.num_classes=10"),
])
def test_checkpoint_of_another_network_is_refused_before_training(tmp_path, model, override, message):
    ckpt = lightning_checkpoint(tmp_path / "other.ckpt", **model)
    with pytest.raises(ConfigError, match=f"ckpt_path: {ckpt} " + message):
        train_here(tmp_path / "run", f"data.root={tmp_path}/synthetic", *TINY, override, f"ckpt_path={ckpt}")


@pytest.mark.parametrize("content, message", [
    (None, "no checkpoint file"),
    (b"not a checkpoint", "is not a readable checkpoint"),
    ({"weights": torch.zeros(3)}, "is not a Lightning checkpoint of this project"),
])
def test_missing_or_foreign_checkpoint_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=f"ckpt_path: .*x.ckpt.*{message}|ckpt_path: {message}"):
        train_here(tmp_path / "run", f"data.root={tmp_path}/synthetic", *TINY, f"ckpt_path={path}")


def test_unknown_experiment_lists_the_known_ones(tmp_path):
    proc = run_train("experiment=nope", f"hydra.run.dir={tmp_path}/run", check=False)
    assert proc.returncode == 1
    assert "Could not find 'experiment/nope'" in proc.stderr and "Available options in 'experiment'" in proc.stderr
    assert "demo" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_override_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="model.dropout: expected float, got 'abc'"):
        train_here(tmp_path / "run", "model.dropout=abc")
