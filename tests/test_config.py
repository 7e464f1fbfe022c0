"""Every config group composes, each paper ablation is one override, bad configs stop with one clear message."""

import pytest
from conftest import ROOT, compose_train, run_train
from omegaconf import OmegaConf

from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode
from alexnet.models import AlexNet
from alexnet.training.config import validate
from alexnet.training.optim import PaperSGD

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
    for group in ("model", "data", "trainer", "logger", "callbacks", "debug")
}


def composed(*overrides):
    cfg = compose_train(*overrides)
    # Resolve what train.py resolves, without a Hydra run (output_dir is a run-time value).
    cfg.paths.output_dir = "/tmp/alexnet-test-out"
    return cfg


@pytest.mark.parametrize("group, option", [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts])
def test_every_config_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"]
    if option == "imagefolder":
        overrides += ["data.root=/some/folder", "data.num_classes=10"]
    validate(composed(*overrides))


def test_model_config_mirrors_the_constructor():
    import inspect

    keys = set(composed().model)
    assert keys == set(inspect.signature(AlexNet).parameters)
    assert set(composed().optim) == set(inspect.signature(PaperSGD).parameters)
    # No defaults in the schema: conf/train.yaml is the only home of the recipe's values.
    assert all(p.default is inspect.Parameter.empty for p in inspect.signature(PaperSGD).parameters.values())


def test_defaults_are_the_papers():
    cfg = composed()
    m = cfg.model
    assert (m.columns, m.lrn, m.lrn_size, m.lrn_alpha, m.lrn_beta, m.lrn_k) == (2, True, 5, 1e-4, 0.75, 2.0)
    assert (m.overlap_pool, m.dropout, m.activation, m.extra_conv) == (True, 0.5, "relu", False)
    o = compose_train("experiment=alexnet_paper").optim
    assert (o.lr, o.momentum, o.weight_decay, o.lr_factor, o.lr_reductions) == (0.01, 0.9, 0.0005, 0.1, 3)
    d = compose_train("experiment=alexnet_paper").data
    assert (d.resize, d.crop_size, d.flip, d.pca_lighting, d.pca_std, d.test_crops, d.batch_size, d.num_classes) == (
        256,
        227,
        True,
        True,
        0.1,
        10,
        128,
        1000,
    )
    assert compose_train("experiment=alexnet_paper").trainer.max_epochs == 90


def diff(a, b, prefix=""):
    """Keys whose values differ between two plain nested dicts."""
    out = set()
    for key in set(a) | set(b):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.add(f"{prefix}{key}")
    return out


@pytest.mark.parametrize(
    "override, changed",
    [
        ("model.lrn=false", {"model.lrn"}),
        ("model.overlap_pool=false", {"model.overlap_pool"}),
        ("model.dropout=0", {"model.dropout"}),
        ("model.activation=tanh", {"model.activation"}),
        ("model=alexnet_1gpu", {"model.columns"}),
        ("data.pca_lighting=false", {"data.pca_lighting"}),
        ("model.lrn_convention=printed", {"model.lrn_convention"}),
    ],
)
def test_each_ablation_is_one_override_changing_one_key(override, changed):
    base = OmegaConf.to_container(composed(), resolve=True)
    ablated = OmegaConf.to_container(composed(override), resolve=True)
    assert diff(base, ablated) == changed


def test_the_default_run_deviates_from_the_papers_recipe_only_where_demo_yaml_says():
    """conf/experiment/demo.yaml's measured deviations, and nothing else (the model init among them:
    Caffe's, at the paper's lr 0.01)."""
    demo = OmegaConf.to_container(composed(), resolve=True)
    paper = OmegaConf.to_container(composed("experiment=alexnet_paper"), resolve=True)
    changed = {key for key in diff(demo, paper) if not key.startswith(("data.", "experiment", "tags"))}
    assert changed == {"model.init", "model.num_classes", "model.crop_size", "trainer.max_epochs"}
    assert (demo["model"]["init"], paper["model"]["init"], demo["optim"]["lr"]) == ("caffe", "paper", 0.01)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.dropout=1.5", "model.dropout: must be in [0, 1), got 1.5"),
        ("model.lrn_size=4", "model: LRN size n must be a positive odd number, got 4"),
        ("model.activation=gelu", "model.activation: expected one of 'relu', 'tanh', got 'gelu'"),
        ("model.lrn=maybe", "model.lrn: expected bool, got 'maybe' (str)"),
        ("model.columns=two", "model.columns: expected int, got 'two' (str)"),
        ("+model.lrnn=false", "model.lrnn: unknown key"),
        ("+data.crop=224", "data.crop: unknown key"),
        ("+trainer.max_epoch=3", "trainer.max_epoch: unknown key"),
        ("optim.lr=fast", "optim.lr: expected float, got 'fast' (str)"),
    ],
)
def test_bad_values_are_named_by_key(override, message):
    from alexnet.training.config import build

    cfg = composed(override)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
        build("model", AlexNet, **OmegaConf.to_container(cfg.model, resolve=True))
        build("optim", PaperSGD, **cfg.optim)
    assert message in str(err.value)


def test_missing_data_root_is_named():
    with pytest.raises(ConfigError, match="data.*root"):
        validate(composed("data=imagefolder", "data.num_classes=10"))


def test_bad_override_stops_train_py_with_one_line_and_no_run(tmp_path):
    proc = run_train("model.dropout=1.5", f"hydra.run.dir={tmp_path}/run", check=False, timeout=120)
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert "config error: model.dropout: must be in [0, 1), got 1.5" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_misspelt_override_is_refused_by_hydra_naming_the_key(tmp_path):
    proc = run_train("model.lrnn=false", f"hydra.run.dir={tmp_path}/run", check=False, timeout=120)
    assert proc.returncode != 0
    assert "model.lrnn" in proc.stderr and "Traceback" not in proc.stderr
