"""python -m alexnet.data.check and the start-of-run part a training run makes (alexnet.data.check):
counts, empty classes, byte-identical files within and across splits, the digest cache, the report.
Its bad cases (link loops, links leaving the root, odd formats) are in tests/bad_input/."""

import json
import os
from pathlib import Path

import pytest

from alexnet.data import check, duplicates
from alexnet.data.check import CROSS_SPLIT, WITHIN_SPLIT
from alexnet.data.sources import FolderSource

# The quick check reads no image as an image: any bytes do. Sizes chosen so that some files share one.
FILES = {
    "train/a/0.JPEG": b"a0" * 50,  # 100 bytes
    "train/a/1.JPEG": b"a1" * 50,  # 100 bytes, other bytes: no copy
    "train/a/2.JPEG": b"u" * 150,  # the only 150-byte file: never read
    "train/b/0.JPEG": b"b0" * 100,  # 200 bytes
    "train/b/copy.JPEG": b"a0" * 50,  # a copy of train/a/0.JPEG in the same split
    "val/a/0.JPEG": b"b0" * 100,  # a copy of train/b/0.JPEG in another split
    "val/b/0.JPEG": b"v" * 300,
    "val/c/0.JPEG": b"w" * 301,
}


def layout(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "train" / "c").mkdir()  # a class without images
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    return root


def quick(root: Path, cache_dir: Path | None = None) -> check.Report:
    return check.quick(FolderSource(root, cache_dir), ["train", "val"])


def test_counts_empty_classes_and_duplicates_within_and_across_splits(tmp_path):
    report = quick(layout(tmp_path / "data"))
    assert report.counts == {"train": {"a": 3, "b": 2, "c": 0}, "val": {"a": 1, "b": 1, "c": 1}}
    assert report.empty_classes() == ["train/c"]
    assert report.groups == [
        [("train", "train/a/0.JPEG"), ("train", "train/b/copy.JPEG")],
        [("train", "train/b/0.JPEG"), ("val", "val/a/0.JPEG")],
    ]
    assert report.summary_fields() == {CROSS_SPLIT: 1, WITHIN_SPLIT: 1}
    assert report.others == ["train/a/notes.txt"]
    # Only the files that share a size were read: the three of 100 bytes and the two of 200.
    assert report.shared_size == 5 and report.read == 5


def test_a_second_check_reads_no_file_and_a_rewritten_file_is_read_again(tmp_path, monkeypatch):
    root = layout(tmp_path / "data")
    first = quick(root, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".content_digests_train.tsv", ".content_digests_val.tsv"]
    assert not list(root.glob(".content_digests_*"))  # data.cache_dir given: nothing beside the data

    def no_read(*args, **kwargs):
        raise AssertionError("a cached digest was computed again")

    with monkeypatch.context() as patched:
        patched.setattr(duplicates, "digest", no_read)
        second = quick(root, tmp_path / "cache")
    assert second.read == 0 and second.groups == first.groups
    # Other bytes of the same size: only that file is read again, and its copy is no longer one.
    copy = root / "train" / "b" / "copy.JPEG"
    copy.write_bytes(b"c0" * 50)
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))
    third = quick(root, tmp_path / "cache")
    assert third.read == 1 and third.summary_fields() == {CROSS_SPLIT: 1, WITHIN_SPLIT: 0}


def test_files_with_the_same_last_bytes_are_read_whole_before_they_are_called_copies(tmp_path):
    tail = os.urandom(duplicates.TAIL)
    root = layout(
        tmp_path / "data",
        {"train/a/0.JPEG": b"x" * 10 + tail, "train/a/1.JPEG": b"y" * 10 + tail, "val/a/0.JPEG": b"y" * 10 + tail},
    )
    report = check.quick(FolderSource(root), ["train", "val"])
    assert report.groups == [[("train", "train/a/1.JPEG"), ("val", "val/a/0.JPEG")]]
    assert report.read == 6  # three last-8-KiB digests, then three whole files


def test_the_cli_prints_the_report_and_writes_its_json(tmp_path, capsys):
    root = layout(tmp_path / "data")
    check.main([str(root), "--quick", "--json", str(tmp_path / "check.json")])  # returns: exit status 0
    out = capsys.readouterr().out
    assert f"dataset check of {root}: 8 images in train, val" in out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:6]}  # per class and split
    assert table == {"class": ["train", "val"], "a": ["3", "1"], "b": ["2", "1"], "c": ["0", "1"], "all": ["5", "3"]}
    assert "duplicates: 2 sets of byte-identical files" in out and "  train/b/0.JPEG = val/a/0.JPEG" in out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING: ")]
    assert warnings[0].startswith("WARNING: 1 image is in more than one split (train, val) as byte-identical files")
    assert "WARNING: 1 class without images: train/c" in warnings
    report = json.loads((tmp_path / "check.json").read_text())
    assert report[CROSS_SPLIT] == 1 and report[WITHIN_SPLIT] == 1 and report["status"] == "warnings"
    assert report["per_class"]["val"] == {"a": 1, "b": 1, "c": 1}
    assert report["duplicates"][1] == [{"split": "train", "file": "train/b/0.JPEG"}, {"split": "val", "file": "val/a/0.JPEG"}]
    clean = tmp_path / "clean"
    for split, data in (("train", b"t"), ("val", b"vv")):
        (clean / split / "a").mkdir(parents=True)
        (clean / split / "a" / "0.png").write_bytes(data)
    check.main([str(clean), "--quick"])
    assert capsys.readouterr().out.rstrip().endswith("no warnings")


def test_the_cli_names_a_missing_root_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        check.main([str(tmp_path / "nowhere")])
    assert stopped.value.code == 2 and capsys.readouterr().err == f"check: {tmp_path / 'nowhere'}: no such folder\n"
