"""A corrupt file in a run folder is named and left out; it never stops the tables. A folder that
holds an earlier run is never reused by accident: a start that neither continues it (ckpt_path=last)
nor overwrites it (overwrite=true) is refused in one line, and the folder is left as it was.
A run folder's tested checkpoint that is missing is named, with what stands in for it."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_train, train_in_process
from hydra import compose, initialize_config_dir
from longrun import TINY, checkpoint

from alexnet.checkpointing.resolve import run_checkpoint
from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode
from alexnet.launch.sweeps import RunFolders
from alexnet.paths import RunDir, register_resolvers


def write_run(folder, summary_text: str, experiment: str = "alexnet_paper") -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    choices:\n      experiment: {experiment}\n")
    (folder / "summary.json").write_text(summary_text)


def test_tables_name_corrupt_files_and_count_the_good_runs(tmp_path):
    out = tmp_path / "outputs"
    good = {
        "status": "finished",
        "experiment": "alexnet_paper",
        "seed": 1,
        "test/top1_err": 0.40,
        "test/top5_err": 0.18,
        "test_crops": 10,
    }
    write_run(out / "runs" / "good", json.dumps(good))
    write_run(out / "runs" / "cut", json.dumps(good)[:40])  # a write cut short (an old copy, a full disk)
    write_run(out / "runs" / "typed", json.dumps({**good, "seed": 2, "val/top1_err": "abc"}))  # edited by hand
    write_run(out / "runs" / "demo", json.dumps(good)[:40], experiment="demo")  # not a preset of the tables
    (out / "evals" / "e").mkdir(parents=True)
    (out / "evals" / "e" / "results.json").write_text('{"crops": 10, "ensemble": ')
    (out / "fig1" / "f").mkdir(parents=True)
    (out / "fig1" / "f" / "fig1.json").write_bytes(b"\xff\xfe not json")
    proc = subprocess.run(
        [sys.executable, "-m", "alexnet.evaluation.tables", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    table = (out / "tables" / "tables.md").read_text()
    assert "| 1 CNN | 40.7 | 40.0 | -0.7 | 18.2 | 18.0 | -0.2 |" in table  # the good run, counted alone
    assert f"{out}/runs/cut/summary.json: not a valid summary" in table  # listed as not counted, by name
    assert f"{out}/runs/typed/summary.json: not a valid summary (val/top1_err is 'abc', not a number)" in table
    assert f"{out}/runs/demo/summary.json: not a valid summary" in table  # whatever its preset
    for run in ("cut", "typed", "demo"):
        assert f"{out}/runs/{run}/summary.json: not a valid summary" in proc.stderr
    assert f"{out}/evals/e/results.json: unreadable, left out of the tables" in proc.stderr
    assert f"{out}/fig1/f/fig1.json: unreadable, left out of the tables" in proc.stderr


# An earlier run of seed 0, as train.py leaves it (content abridged): its record, and a file of the user's.
EARLIER = {
    ".hydra/config.yaml": "seed: 0\n",
    ".hydra/overrides.yaml": "- seed=0\n",
    "summary.json": '{"status": "finished", "seed": 0, "test_checkpoint": "checkpoints/last.ckpt"}',
    "checkpoints/last.ckpt": "seed 0's weights",
    "checkpoints/epoch004.ckpt": "seed 0's best weights",
    "csv/metrics.csv": "epoch,step,train/loss\n0,3,2.30\n",
    "train.log": "seed 0 trained\n",
    "notes.txt": "the user's own file\n",
}
RECORD_REMOVED = "summary.json, .hydra, checkpoints, csv, train.log"
REFUSED = (
    "config error: hydra.run.dir: {run} already holds a run (.hydra, summary.json, checkpoints); continue it with "
    "ckpt_path=last or start afresh, removing its record, with overwrite=true"
)


def earlier_run(folder, files=EARLIER):
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def snapshot(folder) -> dict:
    """Every entry under FOLDER: its bytes (None for a folder) and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def hydra_config(*overrides: str):
    """The config train.py's Hydra callbacks receive for OVERRIDES (the hydra node included)."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_a_folder_holding_a_run_is_refused_in_one_line_and_left_as_it_was(tmp_path):
    """train.py checks before Hydra writes its .hydra/ record and opens train.log in the folder."""
    run = earlier_run(tmp_path / "run")
    before = snapshot(run)
    proc = run_train(f"hydra.run.dir={run}", "seed=1", check=False, timeout=120)
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert proc.stderr.strip().splitlines() == [REFUSED.format(run=run)], proc.stderr
    assert snapshot(run) == before


def test_the_callback_refuses_only_an_earlier_run_not_continued_or_overwritten(tmp_path, capsys):
    fresh, empty, run = tmp_path / "fresh", tmp_path / "empty", earlier_run(tmp_path / "run")
    empty.mkdir()
    (empty / "data").mkdir()  # a folder with other things in it holds no run
    for folder in (fresh, empty):
        RunFolders().on_run_start(hydra_config(f"hydra.run.dir={folder}"))
    before = snapshot(run)
    for continued in ("ckpt_path=last", f"ckpt_path={run}/checkpoints/epoch004.ckpt"):
        RunFolders().on_run_start(hydra_config(f"hydra.run.dir={run}", continued))
    assert snapshot(run) == before
    # A start killed before training, a run that failed, one stopped after its first checkpoint.
    partials = {".hydra": {".hydra/config.yaml": ""}, "summary.json": {"summary.json": ""}, "checkpoints": {"checkpoints/x": ""}}
    for i, (mark, partial) in enumerate(partials.items()):
        folder = earlier_run(tmp_path / f"partial{i}", partial)
        with pytest.raises(SystemExit) as exit:
            RunFolders().on_run_start(hydra_config(f"hydra.run.dir={folder}", "seed=1"))
        assert exit.value.code == ExitCode.CONFIG_ERROR
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"config error: hydra.run.dir: {folder} already holds a run ({mark});")
    for bad, message in (
        (["overwrite=true", "ckpt_path=last"], "overwrite: true removes the checkpoints that ckpt_path=last continues from"),
        (["overwrite=maybe"], "overwrite: expected true or false, got 'maybe'"),
    ):
        with pytest.raises(SystemExit):
            RunFolders().on_run_start(hydra_config(f"hydra.run.dir={run}", *bad))
        assert capsys.readouterr().err.startswith(f"config error: {message}")
    assert snapshot(run) == before


def test_overwrite_removes_the_earlier_record_and_keeps_the_rest(tmp_path, caplog):
    run = earlier_run(tmp_path / "run")
    RunFolders().on_run_start(hydra_config(f"hydra.run.dir={run}", "overwrite=true"))
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    assert f"overwrite=true: removed the earlier run's record from {run} ({RECORD_REMOVED})" in caplog.text


def test_a_further_ddp_rank_is_not_refused_for_what_its_rank_0_wrote(tmp_path, capsys):
    """torchrun's ranks > 0 (hydra.output_subdir=null) start beside rank 0, which may have written
    this start's .hydra/ and log already; what training writes is an earlier run's, even there."""
    run = earlier_run(tmp_path / "run", {".hydra/config.yaml": "seed: 1\n", "train.log": "rank 0 starts\n"})
    rank1 = ["hydra.output_subdir=null", "hydra.job.name=train_rank1"]
    RunFolders().on_run_start(hydra_config(f"hydra.run.dir={run}", *rank1))
    earlier_run(run, {"checkpoints/last.ckpt": "an earlier run's"})
    with pytest.raises(SystemExit):
        RunFolders().on_run_start(hydra_config(f"hydra.run.dir={run}", *rank1))
    assert capsys.readouterr().err.startswith(f"config error: hydra.run.dir: {run} already holds a run (checkpoints)")
    before = snapshot(run)
    RunFolders().on_run_start(hydra_config(f"hydra.run.dir={run}", *rank1, "overwrite=true"))
    assert snapshot(run) == before  # rank 0 removes the record; a further rank never does


def test_a_multirun_folder_holding_jobs_is_refused_continued_or_overwritten(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for job in "01":
        earlier_run(sweep / job)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    before = snapshot(sweep)
    with pytest.raises(SystemExit) as exit:
        RunFolders().on_multirun_start(hydra_config(f"hydra.sweep.dir={sweep}", "seed=1"))
    assert exit.value.code == ExitCode.CONFIG_ERROR
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"config error: hydra.sweep.dir: {sweep} already holds a multirun (multirun.yaml, 0/.hydra, 0/summary.json, "
        "0/checkpoints, ...); continue it with ckpt_path=last or start afresh, removing its record, with overwrite=true"
    ]
    RunFolders().on_multirun_start(hydra_config(f"hydra.sweep.dir={sweep}", "ckpt_path=last"))
    assert snapshot(sweep) == before
    RunFolders().on_multirun_start(hydra_config(f"hydra.sweep.dir={sweep}", "overwrite=true"))
    assert sorted(str(p.relative_to(sweep)) for p in sweep.rglob("*") if p.is_file()) == ["0/notes.txt", "1/notes.txt"]


def test_a_run_started_without_the_callback_is_refused_before_it_records_anything(tmp_path):
    """A job submitit requeues (and a run in this process) starts without train.py's callback:
    train() refuses an earlier run's summary.json and checkpoints without writing a summary of its
    own over them; overwrite=true removes them, and the new run's checkpoints are its own."""
    run = earlier_run(tmp_path / "run")
    args = [f"data.root={tmp_path}/synthetic", *TINY, "trainer.max_epochs=1", "+trainer.limit_train_batches=1", "seed=1"]
    trained = {name: (run / name).read_bytes() for name in RunDir.TRAINED if (run / name).is_file()}
    checkpoints = snapshot(run / "checkpoints")
    with pytest.raises(ConfigError) as refused:
        train_in_process(run, *args)
    assert str(refused.value).startswith(f"hydra.run.dir: {run} already holds a run (summary.json, checkpoints); continue it")
    assert {name: (run / name).read_bytes() for name in trained} == trained
    assert snapshot(run / "checkpoints") == checkpoints

    done = train_in_process(run, *args, "overwrite=true")
    assert done.summary["seed"] == 1 and json.loads((run / "summary.json").read_text())["seed"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]  # not last-v1.ckpt beside the earlier run's
    assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 1


def test_a_missing_tested_checkpoint_is_named_with_what_stands_in_for_it(tmp_path):
    run = RunDir(tmp_path / "copy")
    run.write_summary({"status": "finished", "test_checkpoint": "checkpoints/epoch004.ckpt", "run_dir": "/gone/run"})
    with pytest.raises(FileNotFoundError, match=f"the tested checkpoint {run.checkpoints}/epoch004.ckpt is missing, and so is"):
        run_checkpoint(run)
    run.checkpoints.mkdir()
    run.last_checkpoint.write_bytes(b"")
    assert run_checkpoint(run) == (
        run.last_checkpoint,
        f"{run.summary}: the tested checkpoint {run.checkpoints}/epoch004.ckpt is missing; using {run.last_checkpoint} instead",
    )


def test_the_resume_hint_of_an_overwriting_run_continues_it(tmp_path):
    """A run started with overwrite=true and stopped: the command that resumes it drops overwrite=true
    (with ckpt_path=last it would be refused as a contradiction)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from alexnet.callbacks.stopping import resume_hint

    cfg = hydra_config(f"hydra.run.dir={tmp_path}", "seed=1", "overwrite=true")
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    try:
        assert resume_hint(None) == f"resume with: python train.py seed=1 hydra.run.dir={tmp_path} ckpt_path=last"
    finally:
        HydraConfig.instance().cfg = None


def test_torchrun_restarts_are_refused_up_front_unless_they_can_connect_and_continue(tmp_path, capsys, monkeypatch):
    """A restarted torchrun group starts again in its own folder, which holds its run by then, and
    connects again: a command that cannot continue the run, or an agent that keeps one store for
    every start, is refused at the first start, not at the first restart."""
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "0")
    RunFolders().on_run_start(hydra_config(f"hydra.run.dir={fresh}"))  # no restarts: nothing to continue
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "3")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
    for fine in ("ckpt_path=last", "overwrite=true"):
        RunFolders().on_run_start(hydra_config(f"hydra.run.dir={fresh}", fine))
    with pytest.raises(SystemExit) as exit:
        RunFolders().on_run_start(hydra_config(f"hydra.run.dir={fresh}"))
    assert exit.value.code == ExitCode.CONFIG_ERROR
    assert capsys.readouterr().err.splitlines() == [
        f"config error: ckpt_path: torchrun --max-restarts=3 starts this job again in {fresh}, which then holds this "
        "run: add ckpt_path=last so that a restart continues from last.ckpt (or overwrite=true to start afresh)"
    ]
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")  # the agent's one store for every start
    with pytest.raises(SystemExit):
        RunFolders().on_run_start(hydra_config(f"hydra.run.dir={fresh}", "ckpt_path=last"))
    assert capsys.readouterr().err.startswith(
        "config error: TORCH_DISABLE_SHARE_RDZV_TCP_STORE: torchrun --max-restarts=3 keeps one TCP store for every restart"
    )
    assert not fresh.exists()
