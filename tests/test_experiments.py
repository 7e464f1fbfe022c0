"""conf/experiment presets: each composes, runs, and the ablations differ from alexnet_paper in one key only.

The ImageNet presets cannot run on ImageNet here: the run tests point them at a tiny copy of
the built-in synthetic set (`data=synthetic`, 10 classes, 76 -> 67-pixel crops) and change
nothing else, so what runs is each preset's model, optimiser and trainer settings."""

import json

import pytest
import torch
from builders import small_model
from conftest import ONE_BATCH, OPTIM, ROOT, compose_train, run_train, train_in_process
from omegaconf import OmegaConf
from test_config import diff

from alexnet.errors import ConfigError
from alexnet.training import finetune
from alexnet.training.module import LitAlexNet

PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if p.stem not in ("demo", "fig1_relu_vs_tanh"))
ABLATIONS = {
    "ablation_no_lrn": {"model.lrn"},
    "ablation_no_overlap_pool": {"model.overlap_pool"},
    "ablation_no_dropout": {"model.dropout"},
    "ablation_no_pca": {"data.pca_lighting"},
    "ablation_1gpu": {"model.columns"},
    "ablation_tanh": {"model.activation"},
}


def tiny_synthetic(tmp) -> list[str]:
    # test_split=val and num_classes=10: ILSVRC-2010's test folder and Fall 2011's 21,841 classes are not in the synthetic set.
    return [
        "data=synthetic",
        f"data.root={tmp}/synthetic",
        "data.train_per_class=4",
        "data.val_per_class=2",
        "data.num_classes=10",
        "data.test_split=val",
    ]


def resolved(*overrides) -> dict:
    cfg = compose_train(*overrides)
    cfg.paths.output_dir = "/tmp/alexnet-test-out"  # a Hydra run-time value, absent when only composing
    return OmegaConf.to_container(cfg, resolve=True)


def test_every_ablation_has_a_preset():
    assert set(ABLATIONS) == {p for p in PRESETS if p.startswith("ablation_")}


@pytest.mark.parametrize("preset, changed", sorted(ABLATIONS.items()))
def test_ablation_differs_from_alexnet_paper_in_one_key(preset, changed):
    base, ablated = resolved("experiment=alexnet_paper"), resolved(f"experiment={preset}")
    assert diff(base, ablated) - {"tags"} == changed
    assert preset in ablated["tags"]  # the tables and W&B find the run by it


def test_star_presets():
    base = resolved("experiment=alexnet_paper")
    pretrain = resolved("experiment=alexnet_star_pretrain")
    # data.store and model.num_classes follow data.root and data.num_classes by interpolation.
    assert diff(base, pretrain) - {"tags"} == {
        "model.extra_conv",
        "data.root",
        "data.store",
        "data.num_classes",
        "model.num_classes",
    }
    assert pretrain["data"]["num_classes"] == 21841 and pretrain["model"]["extra_conv"] is True
    finetune_cfg = compose_train("experiment=alexnet_star_finetune")
    assert OmegaConf.is_missing(finetune_cfg, "init_from") and finetune_cfg.model.extra_conv is True


def test_every_preset_runs_a_fast_dev_run(tmp_path):
    """One multirun over the presets, by the README's glob (the fine-tune needs a checkpoint: below)."""
    sweep = tmp_path / "sweep"
    run_train(
        "-m",
        "experiment=glob([ablation_*,alexnet_*],exclude=alexnet_star_finetune)",
        "debug=fdr",
        *tiny_synthetic(tmp_path),
        "++figures=false",
        f"hydra.sweep.dir={sweep}",
        timeout=600,
    )
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert sorted(s["experiment"] for s in summaries) == [p for p in PRESETS if p != "alexnet_star_finetune"]
    for summary in summaries:
        preset = summary["experiment"]
        assert summary["status"] == "finished", summary
        assert preset in summary["tags"] and summary["seed"] == 0 and f"experiment={preset}" in summary["overrides"]


def test_pretrain_then_finetune_replaces_fc8_only(tmp_path):
    pretrain = tmp_path / "pretrain"
    overrides = ["experiment=alexnet_star_pretrain", *tiny_synthetic(tmp_path), *ONE_BATCH, "logger=none", "++figures=false"]
    train_in_process(pretrain, *overrides)
    ckpt = pretrain / "checkpoints" / "last.ckpt"
    # Fine-tune on a label set of another size: 3 classes of the synthetic set, as their own folder.
    small = tmp_path / "three"
    for split in ("train", "val"):
        for wnid in sorted(p.name for p in (tmp_path / "synthetic" / split).iterdir())[:3]:
            (small / split).mkdir(parents=True, exist_ok=True)
            (small / split / wnid).symlink_to(tmp_path / "synthetic" / split / wnid)
    summary = train_in_process(
        tmp_path / "finetune",
        "experiment=alexnet_star_finetune",
        f"init_from={ckpt}",
        "data=imagefolder",
        f"data.root={small}",
        "data.num_classes=3",
        "data.resize=76",
        "data.crop_size=67",
        "debug=fdr",
        "++figures=false",
    ).summary
    assert summary["status"] == "finished" and summary["experiment"] == "alexnet_star_finetune"
    report = summary["init_from"]
    assert report["replaced_layers"] == ["fc8"] and report["fc8_classes"] == {"pretrained": 10, "new": 3}
    assert report["copied_layers"] == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc6", "fc7"]


def test_init_from_copies_weights_exactly(tmp_path):
    source = LitAlexNet(model=small_model(extra_conv=True), optim=OPTIM)
    path = tmp_path / "pre.ckpt"
    torch.save({"state_dict": source.state_dict()}, path)
    target = LitAlexNet(model=small_model(num_classes=3, extra_conv=True), optim=OPTIM)
    fc8_before = target.net.classifier.fc8.weight.clone()
    finetune.init_from(OmegaConf.create({"init_from": str(path)}), target)
    for name, value in target.state_dict().items():
        if ".fc8." not in name:
            assert torch.equal(value, source.state_dict()[name]), name
    assert torch.equal(target.net.classifier.fc8.weight, fc8_before)


def test_init_from_names_what_does_not_fit(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": LitAlexNet(model=small_model(), optim=OPTIM).state_dict()}, path)
    target = LitAlexNet(model=small_model(num_classes=3, extra_conv=True), optim=OPTIM)
    with pytest.raises(ConfigError, match="init_from: .*has no net.features.conv6.weight"):
        finetune.init_from(OmegaConf.create({"init_from": str(path)}), target)
    with pytest.raises(ConfigError, match="init_from: set the pre-trained checkpoint"):
        finetune.init_from(compose_train("experiment=alexnet_star_finetune"), target)


def test_failed_run_leaves_a_failed_summary(tmp_path):
    run = tmp_path / "run"
    overrides = ["experiment=alexnet_star_finetune", *tiny_synthetic(tmp_path), f"init_from={tmp_path}/missing.ckpt", "debug=fdr"]
    with pytest.raises(ConfigError, match="missing.ckpt"):  # train.py: `config error: ...`, exit 2
        train_in_process(run, *overrides)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "missing.ckpt" in summary["error"]
    assert summary["experiment"] == "alexnet_star_finetune" and summary["seed"] == 0
