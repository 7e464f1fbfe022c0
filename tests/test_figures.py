"""Figures 3 and 4 (alexnet.callbacks.figures) and figure 1 (alexnet.experiments.fig1, a smoke run
through train.py's experiment=fig1_relu_vs_tanh): valid PNGs, right content."""

import json

import pytest
import torch
from builders import small_model
from conftest import OPTIM, SHARED_DATA, compose_train, fixture_dir, train_in_process
from PIL import Image
from test_wandb import records, wandb_env, wandb_files  # noqa: F401 (wandb_env: a fixture)

from alexnet.callbacks import figures
from alexnet.experiments import fig1
from alexnet.training.module import LitAlexNet


@pytest.fixture(scope="module")
def trained_setup(request):
    """An untrained two-GPU net at the demo's 67-pixel crop and a tiny synthetic set (real JPEGs)."""
    cfg = compose_train(
        f"data.root={fixture_dir(request, 'fig')}/synthetic",
        "data.train_per_class=5",
        "data.val_per_class=2",
        "data.num_workers=0",
        "data.batch_size=8",
    )
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    data = instantiate(OmegaConf.to_container(cfg.data, resolve=True))
    data.prepare_data()
    data.setup("fit")
    torch.manual_seed(0)
    module = LitAlexNet(model=small_model(), optim=OPTIM).eval()
    return module, data


def test_figures_are_valid_pngs(trained_setup, tmp_path):
    module, data = trained_setup
    paths = figures.save_all(module, data, tmp_path, max_train=0)
    assert [p.name for p in paths] == ["conv1_filters.png", "top5.png", "neighbours.png"]
    for p in paths:
        with Image.open(p) as image:
            image.verify()
            assert image.format == "PNG"


def test_conv1_grid_shows_both_columns_side_by_side(trained_setup):
    module, _ = trained_setup
    grid = figures.conv1_grid(module.net, rows=8, scale=1)
    # 96 kernels: two panels of 8 rows x 6 columns of 11x11 kernels with 1-pixel borders, 4 pixels apart.
    assert grid.size == (2 * (6 * 12 + 1) + 4, 8 * 12 + 1)
    one_column = LitAlexNet(model=small_model(columns=1), optim=OPTIM).net
    assert figures.conv1_grid(one_column, rows=8, scale=1).size == (6 * 12 + 1, 8 * 12 + 1)


def test_nearest_neighbours_are_the_exact_nearest_in_fc7(trained_setup):
    module, data = trained_setup
    queries = torch.stack([data.datasets["val"][i][0] for i in (0, 7)])
    index, dist = figures.nearest_training_images(module, data, queries, k=4, max_train=0)
    train = data.datasets["train"]
    with torch.no_grad():
        feats = module.net.forward_features(data.augment.eval_batch(torch.stack([train[i][0] for i in range(len(train))]), 1))
        q = module.net.forward_features(data.augment.eval_batch(queries, 1))
    brute = torch.cdist(q, feats, compute_mode="donot_use_mm_for_euclid_dist").topk(4, dim=1, largest=False)
    assert torch.allclose(dist, brute.values, rtol=1e-4, atol=1e-4)
    assert torch.equal(index, brute.indices)


def test_figures_reach_tensorboard_and_wandb_through_their_own_readers(tmp_path):  # wandb_env (autouse): offline, no key
    """A real run with both loggers; TensorBoard's EventAccumulator and W&B's offline records
    (wandb_internal_pb2.Record) must each hold all three figures, as the run folder does."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train_in_process(
        run,
        "logger=[tensorboard,wandb]",
        "logger.wandb.mode=offline",
        f"data.root={tmp_path}/synthetic",
        "data.train_per_class=6",
        "data.val_per_class=2",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "model.lrn=false",
    )
    assert not (run / "csv").exists()  # only the loggers asked for write
    names = ["conv1_filters", "top5", "neighbours"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["figures"] == [f"figures/{n}.png" for n in names]  # relative to the run folder
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == sorted(f"figures/{n}" for n in names)
    with Image.open(run / "figures" / "top5.png") as png:
        [logged] = events.Images("figures/top5")
        assert (logged.width, logged.height) == png.size
    assert "test/top1_err" in events.Tags()["scalars"]  # the test's metrics, in the same readable files
    [offline] = wandb_files(run)
    history = [
        item for record in records(offline) if record.WhichOneof("record_type") == "history" for item in record.history.item
    ]
    images: dict[str, dict] = {}  # W&B's image value: nested keys ("figures/top5", "_type"), ("figures/top5", "filenames"), ...
    for item in history:
        if len(item.nested_key) == 2:
            images.setdefault(item.nested_key[0], {})[item.nested_key[1]] = json.loads(item.value_json)
    for name in names:
        image = images[f"figures/{name}"]
        assert image["_type"] == "images/separated" and (offline.parent / "files" / image["filenames"][0]).is_file()


def test_epochs_to_target_interpolates_the_crossing():
    assert fig1.epochs_to([(1, 0.5), (2, 0.3), (3, 0.2)], 0.25) == pytest.approx(2.5)
    assert fig1.epochs_to([(1, 0.5), (2, 0.3)], 0.25) is None
    assert fig1.epochs_to([(0.2, 0.2)], 0.25) == pytest.approx(0.2 * (0.9 - 0.25) / 0.7)  # from chance at epoch 0


def test_fig1_runs_through_train_py(tmp_path):
    """`python train.py experiment=fig1_relu_vs_tanh` (train.py's main, alexnet.launch.job.run_job,
    in this process), one epoch of both nets on 1,280 images: fig1.json, the figure, a summary.json."""
    from alexnet.launch.job import run_job

    if not (SHARED_DATA / "cifar10" / "train").is_dir():
        pytest.skip(f"CIFAR-10 folder copy not available at {SHARED_DATA / 'cifar10'}")
    run = tmp_path / "run"
    overrides = ["experiment=fig1_relu_vs_tanh", "fig1.train_images=1280", "fig1.max_epochs=1", "fig1.time_limit_s=60"]
    train_in_process(run, *overrides, task=run_job)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["experiment"] == "fig1_relu_vs_tanh"
    result = json.loads((run / "fig1.json").read_text())
    # One epoch, a point every fifth of it (cuda-convnet's five CIFAR-10 data batches).
    assert set(result["train_err"]) == {"relu", "tanh"} and all(len(v) == 5 for v in result["train_err"].values())
    assert result["epochs_run"] == {"relu": 1.0, "tanh": 1.0} and result["lr"] == summary["lr"] == {"relu": 0.003, "tanh": 0.01}
    with Image.open(run / "fig1_relu_vs_tanh.png") as image:
        assert image.format == "PNG"


def test_fig1_command_runs_the_yaml_node_with_its_overrides(tmp_path, monkeypatch):
    """`python -m alexnet.experiments.fig1 --out OUT KEY=VALUE ...` runs the same figure-1 code as the
    preset above, on conf/experiment/fig1_relu_vs_tanh.yaml's fig1 node with the overrides applied."""
    ran = {}
    monkeypatch.setattr(fig1, "run", lambda cfg, out: ran.update(cfg=cfg, out=out))
    fig1.main(["--out", str(tmp_path), "max_epochs=1", "lr.tanh=null"])
    assert ran["out"] == tmp_path and ran["cfg"]["max_epochs"] == 1
    assert ran["cfg"]["lr"]["tanh"] is None and ran["cfg"]["lr"]["relu"] is not None  # a nested key; its sibling kept
