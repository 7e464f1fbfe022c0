"""logger=wandb offline: no API key, and a server address nothing answers. In-process runs
(tests/conftest.py: train_in_process), and one multirun through train.py (the `sweep` fixture)."""

import json
import os
import struct
from pathlib import Path

import pytest
from conftest import ONE_BATCH, script, train_in_process, wandb_offline_env
from wandb.proto import wandb_internal_pb2
from wandb.sdk.lib.hashutil import md5_file_b64

from alexnet.errors import RunStopped
from alexnet.exit_codes import ExitCode

QUICK = ["++figures=false"]  # the figures have their own tests; here they only cost time


def tiny_data(tmp_path: Path) -> list[str]:
    return [f"data.root={tmp_path}/synthetic", "data.train_per_class=8", "data.val_per_class=4"]


@pytest.fixture(autouse=True)
def wandb_env(tmp_path, monkeypatch):
    """No key, no reachable server, and wandb's own folders in tmp_path; monkeypatch undoes it after each test."""
    home = tmp_path / "wandb-home"
    env = wandb_offline_env(home)
    for key in [k for k in os.environ if k not in env]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return home


def records(path: Path):
    """The protobuf records of a .wandb file: a LevelDB-style log of 32 KiB blocks after a 7-byte header."""
    data, pos, chunk = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # block trailer: padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def wandb_run(path: Path) -> dict:
    """What an offline .wandb file says: the run record, summary and config keys."""
    run, summary, config = None, {}, {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run" and run is None:
            run = record.run
        elif kind == "summary":
            summary.update({item.key or "/".join(item.nested_key): item.value_json for item in record.summary.update})
        elif kind == "config":
            config.update({item.key or "/".join(item.nested_key): item.value_json for item in record.config.update})
    return {
        "id": run.run_id,
        "name": run.display_name,
        "group": run.run_group,
        "job_type": run.job_type,
        "tags": list(run.tags),
        "summary": summary,
        "config": config,
    }


def wandb_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("**/wandb/offline-run-*/run-*.wandb"))


def artifacts(path: Path) -> list[dict]:
    """The artifacts an offline .wandb file logs, in order: what `wandb sync` will upload."""
    found = []
    for record in records(path):
        if record.WhichOneof("record_type") == "artifact":
            a = record.artifact
            found.append(
                {
                    "type": a.type,
                    "name": a.name,
                    "aliases": list(a.aliases),
                    "used": a.use_after_commit,  # an input of the run, as run.use_artifact marks one
                    "metadata": json.loads(a.metadata),
                    "files": {entry.path: entry for entry in a.manifest.contents},
                }
            )
    return found


def test_offline_run_then_resume_continues_the_same_run(tmp_path, wandb_env):
    run = tmp_path / "run"
    args = [*tiny_data(tmp_path), *ONE_BATCH, *QUICK, "model.lrn=false", "seed=3"]
    first_run = train_in_process(run, "logger=[wandb,csv]", *args, "test=true", "+trainer.limit_test_batches=1")
    [first] = wandb_files(run)
    assert f"upload later with: wandb sync {first.parent}" in first_run.log  # the automatic fallback's one-line notice
    assert "no API key" in first_run.log
    assert (run / "csv" / "metrics.csv").exists()  # logger=[wandb,csv] composes
    info = wandb_run(first)
    assert (run / "wandb_id.txt").read_text().strip() == info["id"]
    assert info["name"].endswith("no_lrn-seed3") and info["group"] == "" and info["job_type"] == "demo"
    assert {"val/top1_err", "best/val_top1_err", "best/epoch", "wall_seconds", "fit_seconds"} <= set(info["summary"])
    assert "system" in info["config"] and '"torch"' in info["config"]["system"] and info["config"]["model"]

    # Its end (logger.wandb.log_model, on by default): the data it read, used and never uploaded,
    # and its best and last checkpoints, as versions of one model artifact.
    dataset, best, last = artifacts(first)
    assert dataset["type"] == "dataset" and dataset["used"] and list(dataset["files"]) == ["dataset.json"]  # no images
    data = dataset["metadata"]
    assert data["root"] == f"{tmp_path}/synthetic" and data["num_classes"] == len(data["classes"]) == 10
    assert {role: (s["split"], s["images"]) for role, s in data["splits"].items()} == {
        "train": ("train", 80),
        "val": ("val", 40),
        "test": ("val", 40),
    }
    assert all(len(s["fingerprint"]) == 40 for s in data["splits"].values())
    assert data["splits"]["train"]["fingerprint"] != data["splits"]["val"]["fingerprint"]
    for artifact, which, name in ((best, "best", "epoch000.ckpt"), (last, "last", "last.ckpt")):
        meta = artifact["metadata"]
        assert artifact["type"] == "model" and artifact["name"] == f"model-{info['id']}" and which in artifact["aliases"]
        assert (meta["checkpoint"], meta["original_filename"], meta["epoch"], meta["global_step"]) == (which, name, 0, 1)
        assert meta["val/top1_err"] == first_run.summary["val/top1_err"] and meta["run_status"] == "finished"
        assert meta["test/top1_err"] == first_run.summary["test/top1_err"] and "test/top5_err" in meta
        assert meta["tested"] == first_run.summary["test_checkpoint_choice"]
        identity = meta["class_identity"]
        assert (identity["num_classes"], identity["classes_sha1"]) == (10, data["classes_sha1"])
        assert identity["train_fingerprint"] == data["splits"]["train"]["fingerprint"]
        assert meta["config"]["seed"] == 3 and meta["config"]["model"]["lrn"] is False  # the resolved config
        assert set(artifact["files"]) == {f"checkpoints/{name}", ".hydra/config.yaml"}  # downloaded: a run folder
        assert Path(artifact["files"][".hydra/config.yaml"].local_path).is_relative_to(wandb_env)  # W&B's staging copy
        # The run's own file, hard-linked into the W&B run folder: no 160 MB copy anywhere.
        assert os.path.samefile(artifact["files"][f"checkpoints/{name}"].local_path, run / "checkpoints" / name)
    assert "last" not in best["aliases"] and "best" not in last["aliases"]
    assert sum(f.stat().st_size for f in wandb_env.rglob("*") if f.is_file()) < 2**20  # W&B's staging and cache

    # Resumed, then pre-empted (SIGTERM): the same W&B run, and the last.ckpt the stop saved logged.
    with pytest.raises(RunStopped):
        train_in_process(
            run,
            "logger=wandb",
            *args,
            "trainer.max_epochs=2",
            f"ckpt_path={run}/checkpoints/last.ckpt",
            "+callbacks.sigterm._target_=longrun.SigtermWhileFitting",
        )
    [second] = [f for f in wandb_files(run) if f != first]
    assert wandb_run(second)["id"] == info["id"] and wandb_run(second)["summary"]["status"] == '"interrupted"'
    [_, stopped] = artifacts(second)  # the dataset, and last alone: an unfinished run's best is provisional
    assert stopped["metadata"]["checkpoint"] == "last" and stopped["metadata"]["run_status"] == "interrupted"
    assert stopped["metadata"]["global_step"] == 2 and "last" in stopped["aliases"]
    assert os.path.samefile(stopped["files"]["checkpoints/last.ckpt"].local_path, run / "checkpoints" / "last.ckpt")
    # The first session's last.ckpt is replaced now; its link still holds what was logged, for `wandb sync`.
    logged = last["files"]["checkpoints/last.ckpt"]
    assert md5_file_b64(logged.local_path) == logged.digest

    # Resumed to the end without artifacts (logger.wandb.log_model=false): none logged.
    resumed = train_in_process(
        run, "logger=wandb", *args, "trainer.max_epochs=2", "ckpt_path=last", "logger.wandb.log_model=false"
    )
    assert f"resuming run {info['id']}" in resumed.log
    files = wandb_files(run)
    assert len(files) == 3 and {wandb_run(f)["id"] for f in files} == {info["id"]}  # `wandb sync` merges them
    [third] = [f for f in files if f not in (first, second)]
    assert artifacts(third) == [] and wandb_run(third)["summary"]["status"] == '"finished"'


def test_multirun_jobs_are_separate_runs_in_one_group(sweep):
    folder, _ = sweep  # python train.py -m ... logger=wandb model.dropout=0.2,1.5,0.3 (tests/conftest.py)
    runs = [wandb_run(f) for f in wandb_files(folder)]
    assert len(runs) == 3 and len({r["id"] for r in runs}) == 3  # the failed job too: a run of its own
    assert {r["group"] for r in runs} == {"demo-sweep"}
    assert {tuple(r["tags"]) for r in runs} == {("demo", "synthetic", "demo-sweep")}  # preset, dataset, sweep
    assert sorted(r["name"].rsplit("-", 1)[-1] for r in runs) == ["dropout0.2", "dropout0.3", "dropout1.5"]
    assert {(folder / j / "wandb_id.txt").read_text().strip() for j in ("0", "2")} <= {r["id"] for r in runs}


def test_disabled_writes_nothing(tmp_path, wandb_env):
    run = tmp_path / "run"
    train_in_process(run, "debug=fdr", "logger=wandb", "logger.wandb.mode=disabled", *tiny_data(tmp_path), *QUICK)
    assert (run / "summary.json").exists()
    assert not (run / "wandb").exists() and not (run / "wandb_id.txt").exists()
    assert not wandb_env.exists()


def test_online_without_api_key_is_one_clear_message(tmp_path, capsys):
    run = tmp_path / "run"
    # SystemExit(2) passes through Hydra's instantiate and main: train.py exits 2 with this one line.
    with pytest.raises(SystemExit) as exit:
        train_in_process(run, "debug=fdr", "logger=wandb", "logger.wandb.mode=online", *tiny_data(tmp_path))
    assert exit.value.code == ExitCode.CONFIG_ERROR
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("config error: logger.wandb.mode=online but no W&B API key"), err
    assert "wandb login" in errors[0] and "Traceback" not in err
    assert not (run / "wandb").exists()


def test_an_artifact_reference_offline_is_one_clear_line(tmp_path, capsys, monkeypatch):
    """eval.py and predict.py take wandb-artifact:// references, downloaded where W&B is online."""
    reference = "wandb-artifact://someone/alexnet/model-abc123:best"
    with pytest.raises(SystemExit) as exit:
        script("eval.py").main([reference, "--out", str(tmp_path / "results.json")])
    assert exit.value.code == ExitCode.CONFIG_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"eval error: {reference}: W&B is offline here (no API key"), err
    assert "`wandb artifact get someone/alexnet/model-abc123:best --root DIR`" in err

    monkeypatch.setenv("WANDB_MODE", "offline")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"")  # never read: the reference fails first
    assert script("predict.py").main([reference, str(photo)]) == ExitCode.CONFIG_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"predict error: {reference}: W&B is offline here (WANDB_MODE=offline)"), err
    assert not (tmp_path / "results.json").exists() and not list(tmp_path.rglob("*.ckpt"))


def test_an_artifact_reference_online_is_its_downloaded_run_folder(tmp_path, monkeypatch):
    """Online, the reference is downloaded (W&B's API stood in for: no server here) into a run
    folder, its config beside its checkpoints/, which eval.py and predict.py read as they read any."""
    import wandb

    from alexnet.evaluation.evaluate import find_members
    from alexnet.loggers import wandb_logger

    class Artifact:
        source_name = "model-abc123:v1"  # the version the alias points at

        def download(self, root: str, skip_cache: bool) -> str:
            assert skip_cache  # no second copy in W&B's cache
            for name in ("checkpoints/epoch004.ckpt", ".hydra/config.yaml"):  # as log_run_artifacts lays them out
                (Path(root) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(root) / name).write_text("")
            return root

    class Api:
        def __init__(self, timeout: int):
            pass

        def artifact(self, path: str, type: str) -> Artifact:
            assert (path, type) == ("someone/alexnet/model-abc123:best", "model")
            return Artifact()

    monkeypatch.setattr(wandb_logger, "choose_mode", lambda mode: ("online", "API key and network"))
    monkeypatch.setattr(wandb, "Api", Api)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "artifacts"))
    [member], _ = find_members(["wandb-artifact://someone/alexnet/model-abc123:best"])
    folder = tmp_path / "artifacts" / "model-abc123:v1"
    assert member.checkpoint == folder / "checkpoints" / "epoch004.ckpt" and member.run_dir == folder
