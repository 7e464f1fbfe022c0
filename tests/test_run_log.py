"""A long run you can follow from its log: with its output going to a file, a run prints where it
starts (or resumes), a line per epoch and step lines, on the console and in train.log."""

import contextlib
import logging
import re

from longrun import tiny, train_here

from alexnet.callbacks.pace import duration, eta_seconds, images_per_second

NUMBER = r"[\d.]+"
EPOCH_LINE = re.compile(
    rf"epoch (\d+)/2: train loss {NUMBER} top1 {NUMBER}% top5 {NUMBER}% \| val loss {NUMBER} top1 {NUMBER}% "
    rf"top5 {NUMBER}% \| lr {NUMBER}(e-\d+)? \| \d+ img/s \| epoch \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d"
)
STEP_LINE = re.compile(rf"step (\d+)/20 \(epoch \d/2\): loss {NUMBER} \| \d+ img/s \| ETA (\d+:\d\d:\d\d|\?)")
HYDRA_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # hydra/job_logging's


def test_the_pace_arithmetic():
    assert images_per_second(1280, 2.0) == 640 and images_per_second(8, 0) == 0
    # A resumed run: steps 10..30 took 60 s, so the 70 steps left take 210 s.
    assert eta_seconds(30, 100, 60.0, first_step=10) == 210 and duration(210) == "0:03:30"
    assert eta_seconds(10, 100, 5.0, first_step=10) is None  # nothing measured yet
    assert eta_seconds(10, float("inf"), 5.0) is None  # max_epochs=-1: no end
    assert duration(90061) == "1d 01:01:01" and duration(None) == "?"


@contextlib.contextmanager
def hydra_like_logging(console, log_file):
    """The root logger's handlers as Hydra's job logging sets them: the console (here a file, not a
    terminal, as under sbatch or `> log`) and the run folder's train.log."""
    root = logging.getLogger()
    handlers = [logging.StreamHandler(console), logging.FileHandler(log_file)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(HYDRA_FORMAT))
        root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not .level: loggers cache whether they are enabled
    try:
        with contextlib.redirect_stdout(console):
            yield
    finally:
        root.setLevel(level)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


def test_a_run_logged_to_a_file_prints_epoch_and_step_lines_and_says_where_it_resumes(tmp_path):
    run, console = tmp_path / "run", tmp_path / "console.txt"
    run.mkdir()
    steps = ["sync_every_n_steps=5", "callbacks.log_lines.every_n_steps=5"]  # 10 steps an epoch
    with open(console, "w") as out, hydra_like_logging(out, run / "train.log"):
        train_here(run, *tiny(tmp_path / "data", run, 2, *steps))
    printed, logged = console.read_text(), (run / "train.log").read_text()
    for text in (printed, logged):
        assert "training from epoch 1/2, step 0: 10 steps an epoch" in text
        assert [m[1] for m in EPOCH_LINE.finditer(text)] == ["1", "2"], text
        assert [int(m[1]) for m in STEP_LINE.finditer(text)] == [5, 10, 15, 20], text
    assert "[alexnet.callbacks.log_lines][INFO]" in logged

    resumed = tmp_path / "resumed.txt"
    with open(resumed, "w") as out, hydra_like_logging(out, run / "train.log"):
        train_here(run, *tiny(tmp_path / "data", run, 3, *steps, "ckpt_path=last"))
    assert re.search(r"resumed from \S+last\.ckpt: continues at epoch 3/3, step 20", resumed.read_text())
