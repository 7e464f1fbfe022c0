"""One bad job never stops a sweep: it is recorded as failed, the others run, and the sweep ends
with the count of finished and failed jobs and a non-zero exit."""

import json
import shutil

from alexnet.exit_codes import ExitCode
from alexnet.launch.sweeps import sweep_count


def test_a_job_with_a_bad_value_is_recorded_and_the_sweep_goes_on(sweep, tmp_path):
    folder, proc = sweep  # python train.py -m ... logger=wandb model.dropout=0.2,1.5,0.3 (tests/conftest.py)
    assert proc.returncode == ExitCode.FAILED
    summaries = [json.loads((folder / job / "summary.json").read_text()) for job in ("0", "1", "2")]
    assert [s["status"] for s in summaries] == ["finished", "failed", "finished"]  # job 2 ran after job 1 failed
    assert summaries[1]["error"] == "ConfigError: model.dropout: must be in [0, 1), got 1.5"
    err = proc.stderr.strip().splitlines()
    assert "config error: model.dropout: must be in [0, 1), got 1.5" in err
    assert any(
        f"job 1 failed: ConfigError: model.dropout: must be in [0, 1), got 1.5; recorded in {folder}/1/summary.json; "
        "the sweep goes on" in line
        for line in proc.stdout.splitlines() + err
    )
    # The last words: the count, naming the failed job.
    last = [line for line in err if line.strip() and not line.startswith("Set the environment variable HYDRA_FULL_ERROR")][-1]
    assert last == f"multirun {folder}: 2 of 3 jobs finished, 1 failed (job 1); each job's summary.json says why"
    assert "Traceback" not in proc.stderr
    # W&B: the failed job is a run of its own in the sweep's group, with its error.
    [record] = list((folder / "1" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert b"model.dropout: must be in [0, 1), got 1.5" in record.read_bytes() and b"demo-sweep" in record.read_bytes()
    # A sweep whose jobs all finished (what on_multirun_end prints) says just that.
    copy = tmp_path / "sweep"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.ckpt", "wandb"))
    shutil.rmtree(copy / "1")
    assert sweep_count(copy) == (f"multirun {copy}: 2 of 2 jobs finished", 0)
