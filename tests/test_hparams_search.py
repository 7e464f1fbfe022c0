"""hparams_search=lr_init: an Optuna search through train.py, continued in its sweep folder, its
table of trials; and what a trial stopped by a flat or diverged loss reports (unit level)."""

import csv
import json
import math

import optuna
import pytest
from conftest import ONE_BATCH, compose_train, fixture_dir, run_train, wandb_offline_env
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_wandb import wandb_files, wandb_run

from alexnet.callbacks.flat_start import FlatStartStop
from alexnet.errors import ConfigError, Diverged, RunStopped
from alexnet.exit_codes import ExitCode
from alexnet.launch import job, search
from alexnet.paths import RunDir, project_root

COLUMNS = ["trial", "optim.lr", "model.init", "val/top1_err", "epochs", "outcome"]


@pytest.fixture(scope="module")
def searched(request):
    """`python train.py -m hparams_search=lr_init` with two tiny trials, logger=wandb (offline),
    then the same command with n_trials=1: the study continued in the same sweep folder."""
    tmp = fixture_dir(request, "search")
    folder = tmp / "sweep"
    command = [
        "-m",
        "hparams_search=lr_init",
        f"data.root={tmp}/synthetic",
        "data.train_per_class=8",
        "data.val_per_class=4",
        *ONE_BATCH,
        "figures=false",
        "logger=wandb",
        "logger.wandb.mode=offline",
        f"hydra.sweep.dir={folder}",
    ]
    env = wandb_offline_env(tmp / "wandb-home")
    first = run_train(*command, "hydra.sweeper.n_trials=2", env=env)
    first_trial = (folder / "0" / RunDir.SUMMARY).read_text()
    continued = run_train(*command, "hydra.sweeper.n_trials=1", env=env)
    return folder, first, continued, first_trial


def table(folder) -> list[dict]:
    with (folder / search.TABLE_CSV).open() as f:
        return list(csv.DictReader(f))


def test_a_search_runs_its_trials_and_keeps_them_in_a_study_in_the_sweep_folder(searched):
    folder, first, continued, first_trial = searched
    study = optuna.load_study(study_name="lr_init", storage=f"sqlite:///{folder}/optuna.db")
    assert [t.number for t in study.trials] == [0, 1, 2]  # the continued search added its one trial
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in study.trials:  # trial N ran in job folder N, with the values the sampler proposed
        config = RunDir(folder / str(t.number)).read_config()
        assert t.params == {"optim.lr": config.optim.lr, "model.init": config.model.init}
        assert 1e-4 <= t.params["optim.lr"] <= 0.1 and t.params["model.init"] in ("paper", "caffe")
        summary = RunDir(folder / str(t.number)).read_summary()
        assert t.value == summary["val/top1_err"] == summary["trial"]["value"]
        assert config.callbacks.flat_start.stop is True
    assert (folder / "0" / RunDir.SUMMARY).read_text() == first_trial  # not written over by the continued search
    assert "#2 : " in continued.stderr + continued.stdout  # numbered on from the study's trials


def test_the_search_ends_with_its_trials_best_first_in_the_sweep_folder(searched):
    folder, first, continued, _ = searched
    rows = table(folder)
    assert list(rows[0]) == COLUMNS
    assert sorted(r["trial"] for r in rows) == ["0", "1", "2"]  # the first invocation's trials too
    errors = [float(r["val/top1_err"]) for r in rows]
    assert errors == sorted(errors)
    assert {r["outcome"] for r in rows} == {"finished"} and {r["epochs"] for r in rows} == {"1"}
    assert (folder / search.TABLE_MD).read_text().startswith("| trial | optim.lr | model.init | val/top1_err |")
    log = continued.stdout + continued.stderr
    assert "trials, best first (minimize val/top1_err)" in log and f"written to {folder / search.TABLE_MD}" in log
    assert "alembic" not in log  # its storage's schema tool's lines, silenced


def test_with_wandb_the_table_goes_to_the_sweeps_group(searched):
    folder, *_ = searched
    runs = [wandb_run(f) for f in wandb_files(folder)]
    tables = [r for r in runs if r["name"] == "trials"]
    assert len(runs) == 3 + 2 and len(tables) == 2  # three trials; a table at the end of each invocation
    assert {r["group"] for r in runs} == {"demo-sweep"} and {r["job_type"] for r in tables} == {"search"}
    [last] = [r for r in tables if json.loads(r["summary"]["trials/nrows"]) == 3]
    assert json.loads(last["summary"]["best/trial"]) == table(folder)[0]["trial"]


def test_the_preset_composes_with_the_slurm_launcher():
    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        cfg = compose("train", ["hparams_search=lr_init", "hydra/launcher=slurm", "hydra.sweep.dir=/s"], return_hydra_config=True)
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    assert sweeper["_target_"] == "hydra_plugins.alexnet_optuna.ContinuedOptunaSweeper"
    assert sweeper["storage"] == "sqlite:////s/optuna.db" and sweeper["direction"] == "minimize"
    assert set(sweeper["params"]) == {"optim.lr", "model.init"}
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.callbacks.trials_table._target_ == "alexnet.launch.search.TrialsTable"
    assert cfg.optimized_metric == "val/top1_err" and cfg.callbacks.flat_start.stop is True


# Unit level: a trial stopped by the flat-start guard or the NaN guard, through run_job.


def stopped_trial(tmp_path, monkeypatch, stop: RunStopped, *overrides: str) -> tuple[float, dict]:
    """run_job in a search's job, its training replaced by one that writes what a stopped run
    writes (alexnet.training.run.stopped) and raises STOP; what run_job returned and the summary."""
    cfg = compose_train("hparams_search=lr_init", *overrides)
    out = tmp_path / "sweep" / "0"
    cfg.paths.output_dir = str(out)

    def train(_cfg):
        RunDir(out).write_summary({"status": stop.status, "message": str(stop), "epochs": 0, "global_step": 200})
        raise stop

    monkeypatch.setattr("alexnet.training.run.train", train)
    monkeypatch.setattr(job, "sweep_dir", lambda: str(tmp_path / "sweep"))
    return job.run_job(cfg), RunDir(out).read_summary()


def test_a_trial_stopped_by_a_flat_start_reports_chance_error(tmp_path, monkeypatch):
    stop = FlatStartStop("flat start: ...; stopped (callbacks.flat_start.stop=true)", "flat_start", ExitCode.FLAT_START, None)
    value, summary = stopped_trial(tmp_path, monkeypatch, stop)
    assert value == pytest.approx(0.9)  # 1 - 1/10
    assert summary["status"] == "flat_start" and summary["message"].startswith("flat start")
    assert summary["trial"] == {"metric": "val/top1_err", "value": value, "pruned": "flat_start"}


def test_a_diverged_trial_reports_the_chance_value_of_the_optimized_metric(tmp_path, monkeypatch):
    stop = Diverged("training loss is nan ...", "diverged", ExitCode.DIVERGED, None)
    value, summary = stopped_trial(tmp_path, monkeypatch, stop, "optimized_metric=val/loss", "data.num_classes=20")
    assert value == pytest.approx(math.log(20)) and summary["trial"]["pruned"] == "diverged"


def test_a_trial_stopped_by_a_signal_still_ends_the_search(tmp_path, monkeypatch):
    stop = RunStopped("stopped by SIGTERM", "interrupted", 128 + 15, None)
    with pytest.raises(SystemExit) as exit:
        stopped_trial(tmp_path, monkeypatch, stop)
    assert exit.value.code == 128 + 15


def fake_trial(sweep, number: int, lr: float, init: str, summary: dict) -> None:
    run = RunDir(sweep / str(number))
    run.config.parent.mkdir(parents=True)
    run.config.write_text(OmegaConf.to_yaml({"optim": {"lr": lr}, "model": {"init": init}}))
    if summary is not None:
        run.write_summary(summary)


def test_the_table_puts_pruned_trials_at_chance_and_failed_ones_last(tmp_path):
    sweep = tmp_path / "sweep"
    chance = {"metric": "val/top1_err", "value": 0.9}
    fake_trial(sweep, 0, 0.05, "paper", {"status": "flat_start", "epochs": 2, "trial": {**chance, "pruned": "flat_start"}})
    fake_trial(sweep, 1, 0.01, "caffe", {"status": "finished", "epochs": 6, "trial": {**chance, "value": 0.3, "pruned": None}})
    fake_trial(sweep, 2, 0.09, "paper", {"status": "failed", "error": "RuntimeError: ..."})
    fake_trial(sweep, 3, 0.001, "caffe", {"status": "finished", "epochs": 6, "trial": {**chance, "pruned": None}})
    fake_trial(sweep, 4, 0.08, "caffe", {"status": "diverged", "epochs": 0, "trial": {**chance, "pruned": "diverged"}})
    fake_trial(sweep, 5, 0.0002, "paper", None)  # still running, or killed
    fake_trial(sweep, 10, 0.002, "paper", {"status": "finished", "epochs": 6, "trial": {**chance, "value": 0.5, "pruned": None}})
    rows = search.trials(sweep, ["optim.lr", "model.init"], "val/top1_err", "minimize")
    assert [r["trial"] for r in rows] == ["1", "10", "3", "0", "4", "2", "5"]
    assert list(rows[0]) == COLUMNS
    outcomes = {r["trial"]: r["outcome"] for r in rows}
    assert outcomes["0"] == "pruned: flat start (chance)" and outcomes["4"] == "pruned: diverged (chance)"
    assert outcomes["3"] == "finished" and outcomes["2"] == "failed" and outcomes["5"] == "incomplete (no summary.json)"
    assert [r["val/top1_err"] for r in rows] == [0.3, 0.5, 0.9, 0.9, 0.9, None, None]
    assert [r["trial"] for r in search.trials(sweep, [], "val/top1_err", "maximize")][:3] == ["3", "0", "4"]
    md, _ = search.write_table(sweep, rows)
    assert "| 0 | 0.05 | paper | 0.9 | 2 | pruned: flat start (chance) |" in md.read_text().splitlines()


def test_a_misspelt_optimized_metric_stops_the_search_before_any_trial(capsys):
    cfg = compose_train("hparams_search=lr_init", "optimized_metric=val/top1_error")
    with pytest.raises(SystemExit) as exit:
        search.TrialsTable().on_multirun_start(config=cfg)
    assert exit.value.code == ExitCode.CONFIG_ERROR
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("config error: optimized_metric: expected one of val/top1_err, val/top5_err, val/loss")


def test_a_finished_trial_without_the_metric_is_a_config_error(tmp_path):
    cfg = compose_train("hparams_search=lr_init")
    cfg.paths.output_dir = str(tmp_path)
    missing = r"^optimized_metric: val/top1_err was not measured by this run \(its metrics: train/loss\)"
    with pytest.raises(ConfigError, match=missing):
        search.report_finished(cfg, "val/top1_err", {"status": "finished", "train/loss": 2.3})
