"""A folder layout with symbolic links: a link back to a folder it is in is refused in one line
naming it (training, the listing, the check's command line); links that lead out of the root
are followed and reported by the check (alexnet.data.check)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from longrun import TINY, train_here

from alexnet.data import check
from alexnet.data.listing import ListingError
from alexnet.data.sources import FolderSource
from alexnet.errors import ConfigError


def class_folders(root: Path, images: int = 48) -> Path:
    """train/ and val/ with classes a and b, ``images`` files in train/a (the listing reads no pixels)."""
    for split, cls, n in (("train", "a", images), ("train", "b", 2), ("val", "a", 1), ("val", "b", 1)):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / split / cls / f"{i}.JPEG").write_bytes(f"{split}{cls}{i}".encode())
    return root


@pytest.mark.parametrize("target", [".", "..", "../.."])  # the class folder, the split, the root
def test_a_link_back_to_a_folder_it_is_in_is_refused_naming_it(tmp_path, target):
    root = class_folders(tmp_path / "data")
    (root / "train" / "a" / "again").symlink_to(target)
    # Followed, `again -> .` listed the 48 images again and again until the path grew too long (688 or 1968
    # entries, by the length of the root).
    with pytest.raises(ListingError) as refused:
        FolderSource(root).records("train")
    message = str(refused.value)
    assert message == (
        f"data.root: {root}/train/a/again is a symbolic link to {target}, a folder it is in: "
        "its images would be listed over and over (remove the link)"
    )


def test_training_refuses_a_link_loop_as_a_config_error(tmp_path):
    root = class_folders(tmp_path / "data")
    (root / "train" / "a" / "again").symlink_to(".")
    overrides = ["data=imagefolder", f"data.root={root}", "data.resize=76", "data.crop_size=67", *TINY[2:]]
    with pytest.raises(
        ConfigError, match=rf"^data.root: {root}/train/a/again is a symbolic link to \., a folder it is in: [^\n]*$"
    ):
        train_here(tmp_path / "run", *overrides)


def test_the_check_refuses_a_link_loop_in_one_line_and_exit_status_2(tmp_path, capsys):
    root = class_folders(tmp_path / "data")
    (root / "val" / "b" / "up").symlink_to("..")
    expected = f"check: {root}/val/b/up is a symbolic link to .., a folder it is in: its images would be listed over and over"
    with pytest.raises(SystemExit) as stopped:
        check.main([str(root), "--quick"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith(expected) and err.count("\n") == 1
    # The command itself, once: the same line, no traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "alexnet.data.check", str(root)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 2 and proc.stderr == err and proc.stdout == ""


def test_links_leaving_the_root_are_followed_and_reported(tmp_path, capsys):
    root = class_folders(tmp_path / "data", images=1)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "b").mkdir(parents=True)
    (elsewhere / "b" / "0.JPEG").write_bytes(b"from elsewhere")
    (elsewhere / "x.JPEG").write_bytes(b"one more")
    os.rename(root / "train" / "b", tmp_path / "old-b")
    (root / "train" / "b").symlink_to(elsewhere / "b")  # a class folder on other storage
    (root / "train" / "a" / "x.JPEG").symlink_to(elsewhere / "x.JPEG")
    (root / "val" / "a" / "same.JPEG").symlink_to("../../train/a/0.JPEG")  # inside the root: a copy, not a way out
    report = check.quick(FolderSource(root), ["train", "val"])
    assert report.counts == {"train": {"a": 2, "b": 1}, "val": {"a": 2, "b": 1}}
    assert sorted(report.outside) == [("train/a/x.JPEG", str(elsewhere / "x.JPEG")), ("train/b", str(elsewhere / "b"))]
    assert report.across() == [[("train", "train/a/0.JPEG"), ("val", "val/a/same.JPEG")]]
    check.main([str(root), "--quick"])  # reported, not refused: exit status 0
    out = capsys.readouterr().out
    assert f"WARNING: 2 symbolic links lead out of {root}: " in out and f"train/b -> {elsewhere / 'b'}" in out
