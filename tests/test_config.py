"""Every config group composes and passes the schema check, each paper ablation is one override,
bad configs stop with one clear message. conf/ owns every value: these tests check composition
and the checks, not the values (the paper's numbers are pinned where the paper prints them)."""

import inspect

import pytest
from conftest import ROOT, compose_train, run_train
from omegaconf import OmegaConf

from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode
from alexnet.models import AlexNet
from alexnet.training.config import constructor_params, targets, validate
from alexnet.training.optim import PaperSGD

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
    for group in ("model", "data", "trainer", "logger", "callbacks", "debug", "experiment", "hparams_search")
}
EVERY_OPTION = [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts]


def composed(*overrides):
    cfg = compose_train(*overrides)
    # Resolve what train.py resolves, without a Hydra run (output_dir is a run-time value).
    cfg.paths.output_dir = "/tmp/alexnet-test-out"
    return cfg


def option_overrides(group: str, option: str) -> list[str]:
    overrides = [f"{group}={option}"]
    if option == "imagefolder":
        overrides += ["data.root=/some/folder", "data.num_classes=10"]
    return overrides


@pytest.mark.parametrize("group, option", EVERY_OPTION)
def test_every_config_option_composes_and_passes_the_schema_check(group, option):
    """Every node that becomes a constructor call (model, optim, data, each callback and logger,
    the trainer) has exactly its constructor's arguments, with their types."""
    cfg = composed(*option_overrides(group, option))
    validate(cfg)
    assert {"model", "optim", "data", "trainer"} <= set(targets(cfg))


@pytest.mark.parametrize("group, option", EVERY_OPTION)
def test_no_default_is_written_both_in_a_constructor_and_in_a_yaml_file(group, option):
    """YAML owns every default: a constructor of this project that a node configures has no
    default value for any key the node sets (third-party constructors keep their own)."""
    twice = []
    for key, (factory, args) in targets(composed(*option_overrides(group, option))).items():
        params, _ = constructor_params(factory)
        for name in args:
            param = params.get(name)
            if param is None or param.default is inspect.Parameter.empty:
                continue
            if (getattr(param.owner, "__module__", None) or "").startswith("alexnet."):
                twice.append(f"{key}.{name} ({param.owner.__qualname__})")
    assert not twice


def test_model_and_optim_nodes_are_their_constructors_arguments():
    assert set(composed().model) == set(inspect.signature(AlexNet).parameters)
    assert set(composed().optim) == set(inspect.signature(PaperSGD).parameters)


def test_the_trainer_node_is_lightning_trainers_arguments_and_gpu_turns_the_fast_path_on():
    import lightning as L

    trainer_args = set(inspect.signature(L.Trainer).parameters)
    for option in GROUP_OPTIONS["trainer"]:
        assert set(composed(f"trainer={option}").trainer) <= trainer_args, option
    plain, gpu = composed().callbacks.fast_path, composed("trainer=gpu").callbacks.fast_path
    assert not plain.channels_last and not plain.compile
    assert gpu.channels_last and gpu.compile


def test_ddp_is_gpu_plus_the_ddp_keys():
    gpu = OmegaConf.to_container(composed("trainer=gpu"), resolve=True)
    ddp = OmegaConf.to_container(composed("trainer=ddp"), resolve=True)
    assert diff(gpu, ddp) == {"trainer.devices", "trainer.strategy", "trainer.sync_batchnorm"}


def test_the_paper_preset_is_train_yamls_recipe_on_imagenet():
    """conf/experiment/alexnet_paper.yaml selects the data and names the run, nothing else."""
    paper = OmegaConf.to_container(composed("experiment=alexnet_paper"), resolve=True)
    recipe = OmegaConf.to_container(composed("~experiment", "data=imagenet"), resolve=True)
    assert diff(paper, recipe) == {"tags"}


def test_the_papers_numbers():
    """Pinned on purpose: the numbers the paper prints (section 3.3's LRN, 4.2's dropout, section 5's
    SGD and batch, 4.1's ten test patches), as conf/ composes them for the paper's run."""
    cfg = composed("experiment=alexnet_paper")
    m, o, d = cfg.model, cfg.optim, cfg.data
    assert (m.columns, m.lrn_size, m.lrn_alpha, m.lrn_beta, m.lrn_k, m.dropout) == (2, 5, 1e-4, 0.75, 2.0, 0.5)
    assert (o.lr, o.momentum, o.weight_decay, o.lr_factor, o.lr_reductions) == (0.01, 0.9, 0.0005, 0.1, 3)
    assert (d.resize, d.batch_size, d.test_crops, d.num_classes, cfg.trainer.max_epochs) == (256, 128, 10, 1000, 90)


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
    assert (demo["data"]["batch_size"], paper["data"]["batch_size"]) == (64, 128)  # section 5: "batch size of 128"


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
        ("~model.dropout", "model.dropout: missing (required by AlexNet)"),
        ("~data.resize", "data.resize: missing (required by SyntheticDataModule)"),
        ("+trainer.channels_last=true", "trainer.channels_last: unknown key"),
        ("callbacks.fast_path.compile=maybe", "callbacks.fast_path.compile: expected bool, got 'maybe' (str)"),
        ("+callbacks.flat_start.margins=1", "callbacks.flat_start.margins: unknown key"),
        ("callbacks.graceful_stop.every_n_steps=often", "callbacks.graceful_stop.every_n_steps: expected int"),
        ("logger=wandb", None),
        ("logger.csv.version=[1]", "logger.csv.version: expected"),
    ],
)
def test_bad_values_are_named_by_key(override, message):
    from alexnet.training.config import build

    cfg = composed(override)
    if message is None:  # a well-formed node of another group: the check passes it
        validate(cfg)
        return
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
