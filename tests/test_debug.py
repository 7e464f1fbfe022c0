"""The debug= recipes: overfit's verdict (a net that learns nothing fails it), the profiler's
report in the run folder. (debug=limit and every other option compose: tests/test_config.py.)"""

import logging

from conftest import ONE_BATCH
from longrun import train_here

from alexnet.callbacks.overfit import verdict

SMALL = ["data.train_per_class=2", "data.val_per_class=1", "data.batch_size=8", "data.num_workers=0", "logger=none"]


def test_the_overfit_verdict_passes_below_its_threshold_only():
    assert verdict(2.3026, 0.0123, 0.05) == "overfit: loss 2.3026 -> 0.0123: passed"
    assert verdict(2.3026, 2.3026, 0.05).endswith(": FAILED (the net did not learn these batches: not below 0.05)")


def overfit_verdicts(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("overfit:")]


def test_the_net_learns_a_batch_by_heart_on_the_built_in_set(tmp_path, caplog):
    """One batch of 4 synthetic images (about 80 steps): fitting stops once the loss is below the threshold."""
    caplog.set_level(logging.INFO, logger="alexnet.callbacks.overfit")
    small = [*SMALL, "data.batch_size=4", "trainer.overfit_batches=1"]
    train_here(tmp_path / "run", "debug=overfit", f"data.root={tmp_path / 'data'}", *small)
    lines = overfit_verdicts(caplog)
    assert len(lines) == 1 and lines[0].endswith(": passed"), lines
    start, end = (float(x) for x in lines[0].split("loss ")[1].split(":")[0].split(" -> "))
    assert start > 1.0 and end < 0.05 * start  # from near ln(classes) to near zero


def test_overfit_fails_a_net_that_does_not_learn(tmp_path, caplog):
    """A learning rate too small to move the weights (optim.lr=0 is refused as a config error):
    the loss stays where it started, and the verdict says so."""
    caplog.set_level(logging.INFO, logger="alexnet.callbacks.overfit")
    run = tmp_path / "run"
    train_here(run, "debug=overfit", f"data.root={tmp_path / 'data'}", *SMALL, "optim.lr=1e-9", "trainer.max_epochs=2")
    lines = overfit_verdicts(caplog)
    assert len(lines) == 1 and "FAILED (the net did not learn these batches" in lines[0], lines
    start, end = (float(x) for x in lines[0].split("loss ")[1].split(":")[0].split(" -> "))
    assert abs(start - end) < 1e-3 and end > 1.0  # near ln(classes): nothing learnt


def test_the_profiler_writes_its_report_into_the_run_folder(tmp_path):
    run = tmp_path / "run"
    one_batch = [o.lstrip("+") for o in ONE_BATCH]  # the limits are debug=profiler's keys already
    train_here(run, "debug=profiler", f"data.root={tmp_path / 'data'}", *SMALL, *one_batch)
    report = (run / "fit-profile.txt").read_text()
    assert "run_training_epoch" in report and "Total" in report
