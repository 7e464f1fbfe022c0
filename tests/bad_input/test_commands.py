"""Each command's bad input ends in one line naming it, never a traceback: eval.py's options,
predict.py on a run whose data moved, train.py's command line and its data, and a stop of
prepare. All in this process: each command's main with its argv."""

import json
import multiprocessing
import os
import runpy
import signal
import sys
import time

import pytest
from conftest import ROOT, compose_train, script, train_in_process
from hydra.core.override_parser.overrides_parser import OverridesParser
from longrun import TINY
from omegaconf import OmegaConf
from test_bad_images import folder

from alexnet.data import prepare as prepare_module
from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode
from alexnet.launch.job import run_job
from alexnet.training.config import as_dict
from bad_input.test_checkpoints import image_folder, lightning_checkpoint

CLASSES = [f"c{i}" for i in range(10)]  # lightning_checkpoint's ten outputs


def test_eval_py_names_a_batch_size_it_cannot_use(tmp_path, capsys):
    checkpoint = lightning_checkpoint(tmp_path / "net.ckpt")
    root = image_folder(tmp_path / "data", CLASSES)
    args = [checkpoint, "--data-root", str(root), "--batch-size", "0", "--num-workers", "0", "--out", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as exit:
        script("eval.py").main(args)
    assert exit.value.code == ExitCode.CONFIG_ERROR
    assert capsys.readouterr().err == "eval error: data.batch_size: must be positive, got 0\n"


def test_predict_py_names_the_data_that_moved_and_the_option_that_finds_it(tmp_path, capsys):
    run, moved = tmp_path / "run", tmp_path / "data"
    lightning_checkpoint((run / "checkpoints").mkdir(parents=True) or run / "checkpoints" / "last.ckpt")
    cfg = compose_train("data=imagefolder", f"data.root={moved}", "data.num_classes=10", "data.resize=76", "data.crop_size=67")
    (run / ".hydra").mkdir()
    OmegaConf.save({"data": as_dict(cfg, "data"), "model": as_dict(cfg, "model")}, run / ".hydra" / "config.yaml")
    image = image_folder(tmp_path / "photos", CLASSES[:1]) / "val" / "c0" / "0.JPEG"
    assert script("predict.py").main([str(run), str(image)]) == ExitCode.CONFIG_ERROR
    assert capsys.readouterr().err == (
        f"predict error: data.root: folder {moved} does not exist (the run's data moved? give its new place with --data-root)\n"
    )


def test_an_unquoted_non_ascii_override_is_named_with_the_quoting_that_works(monkeypatch, capsys):
    # Hydra's lexer error alone says neither which override nor what to do.
    monkeypatch.setattr(sys, "argv", ["train.py", "seed=1", "data.root=/data/données"])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")  # stops before Hydra starts
    assert exit.value.code == ExitCode.CONFIG_ERROR
    err = capsys.readouterr().err
    fix = 'data.root="/data/données"'
    assert err == (
        "config error: data.root: '/data/données' has characters outside ASCII, which Hydra's override grammar takes "
        f"only inside quotes: write '{fix}'\n"
    )
    assert OverridesParser.create().parse_overrides([fix])[0].value() == "/data/données"  # the fix works


@pytest.mark.parametrize("full_error", [False, True])
def test_too_many_unreadable_training_images_end_the_run_in_one_line(tmp_path, capsys, monkeypatch, full_error):
    root = folder(tmp_path / "data", {"train": ["truncated"]})
    overrides = ["data=imagefolder", f"data.root={root}", "data.num_classes=2", "data.resize=76", "data.crop_size=67"]
    if full_error:  # Hydra's switch shows the traceback, as for its own errors
        monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError if full_error else SystemExit) as stop:
        train_in_process(tmp_path / "run", *overrides, *TINY[2:], "data.max_bad_images=0", task=run_job)
    message = "data.max_bad_images: 1 unreadable training images in the statistics pass, more than the 0 allowed"
    if full_error:
        assert str(stop.value).startswith(message)
    else:
        assert stop.value.code == ExitCode.CONFIG_ERROR
        err = capsys.readouterr().err
        assert err.startswith(f"config error: {message}") and err.count("\n") == 1 and "Traceback" not in err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


def signal_the_main_process(task: dict) -> dict:
    os.kill(os.getppid(), signal.SIGTERM)  # a pre-emption: the main process is told
    time.sleep(60)  # until the main process ends this worker
    return {}


def signal_the_worker(task: dict) -> dict:
    os.kill(os.getpid(), signal.SIGTERM)  # the process group's SIGTERM, met by a worker first
    time.sleep(60)
    return {}


def fail(signum, frame):
    raise AssertionError(f"{signal.Signals(signum).name} reached the test: prepare did not handle the stop, or hung")


@pytest.mark.parametrize("write_shard", [signal_the_main_process, signal_the_worker])
def test_a_stopped_prepare_says_so_and_its_workers_end_quietly(tmp_path, capfd, monkeypatch, write_shard):
    # multiprocessing.Pool's workers printed BrokenPipeError tracebacks here, or left its shutdown
    # waiting forever on a lock a killed worker held.
    src = folder(tmp_path / "src", {})
    monkeypatch.setattr(prepare_module, "write_shard", write_shard)  # what the forked workers run
    before = {signum: signal.signal(signum, fail) for signum in (signal.SIGTERM, signal.SIGALRM)}
    signal.alarm(60)
    try:
        with pytest.raises(SystemExit) as exit:
            prepare_module.main([str(src), str(tmp_path / "store"), "--workers", "2", "--shard-size", "2", "--resize", "64"])
        assert signal.getsignal(signal.SIGTERM) is fail  # this process's handler put back
    finally:
        signal.alarm(0)
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert exit.value.code == 128 + signal.SIGTERM
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Error" not in out + err
    assert "prepare: stopped by SIGTERM: the finished shards are kept; the same command goes on from them" in " ".join(
        out.split()
    )
    assert not multiprocessing.active_children()  # no worker left behind
