"""A bad setting is one line, ``config error: <key>: ...``, naming the key it is about, before any work."""

import pytest
from conftest import run_train
from longrun import TINY, train_here

from alexnet.errors import ConfigError
from alexnet.exit_codes import ExitCode


def test_missing_data_root_exits_with_one_line(tmp_path):
    """Through train.py: a config error in a run is one line on stderr, no traceback, exit 2."""
    proc = run_train(
        "data=imagefolder",
        f"data.root={tmp_path}/nowhere",
        "data.num_classes=10",
        *TINY[2:],
        f"hydra.run.dir={tmp_path}/run",
        check=False,
    )
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert f"config error: data.root: folder {tmp_path}/nowhere does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_experiment_lists_the_known_ones(tmp_path):
    proc = run_train("experiment=nope", f"hydra.run.dir={tmp_path}/run", check=False)
    assert proc.returncode == 1
    assert "Could not find 'experiment/nope'" in proc.stderr and "Available options in 'experiment'" in proc.stderr
    assert "demo" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_override_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="model.dropout: expected float, got 'abc'"):
        train_here(tmp_path / "run", "model.dropout=abc")


@pytest.mark.parametrize(
    "override, message",
    [
        # The constructors' own checks, each under the key it is about (not the node, not another node).
        ("data.batch_size=0", "data.batch_size: must be positive, got 0"),
        ("data.crop_size=90", r"data.crop_size: crop_size \(90\) must not exceed resize \(76\)"),
        ("optim.lr=-1", "optim.lr: must be positive, got -1"),
        ("model.dropout=1.5", r"model.dropout: must be in \[0, 1\), got 1.5"),
    ],
)
def test_constructor_checks_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        train_here(tmp_path / "run", f"data.root={tmp_path}/synthetic", override)


def test_run_folder_that_cannot_be_made_is_one_line(tmp_path):
    # A path under a regular file cannot be a folder, for root too (a read-only folder is not, as root).
    (tmp_path / "file").write_text("not a folder")
    proc = run_train(f"data.root={tmp_path}/synthetic", f"hydra.run.dir={tmp_path}/file/run", check=False)
    assert proc.returncode == ExitCode.CONFIG_ERROR
    assert proc.stderr.strip() == (
        f"config error: hydra.run.dir: cannot create the run folder {tmp_path}/file/run: {tmp_path}/file is a file, not a folder"
    )
