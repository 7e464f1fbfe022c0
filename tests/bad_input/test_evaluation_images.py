"""The val and test images are all decoded at the start of a run (alexnet.data.readable), once:
which files decoded is cached by path, size and modification time, so that a rerun decodes only
what is new or changed, and a file that failed is decoded again until it is fixed."""

import io
import os
from pathlib import Path

import pytest
from builders import data_module
from PIL import Image

from alexnet.data import readable
from alexnet.data.datasets import ImageRecords
from alexnet.errors import ConfigError


def jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (shade, 255 - shade, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


def two_classes(root: Path) -> Path:
    for split in ("train", "val"):
        for c, wnid in enumerate(("a", "b")):
            (root / split / wnid).mkdir(parents=True)
            for i in range(2):
                (root / split / wnid / f"{i}.jpg").write_bytes(jpeg(40 * c + 10 * i))
    return root


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The images the start-of-run check decodes, by their path in the root, in the order decoded."""
    calls: list[str] = []

    class Counted(ImageRecords):
        def decode_into(self, i, out):
            calls.append(self.records.ids[i])
            return super().decode_into(i, out)

    monkeypatch.setattr(readable, "ImageRecords", Counted)
    return calls


def set_up(root: Path, cache: Path) -> None:
    # val is also the test split (conf/data/imagefolder.yaml): decoded once.
    small = dict(resize=32, crop_size=28, batch_size=2, num_workers=0, mean="none", pca_lighting=False)
    data_module(root, cache_dir=str(cache), **small).setup("fit")


def test_a_rerun_decodes_only_new_changed_or_failed_files(tmp_path, decoded, caplog):
    root, cache = two_classes(tmp_path / "data"), tmp_path / "cache"
    val = sorted(f"val/{c}/{i}.jpg" for c in "ab" for i in range(2))
    with caplog.at_level("INFO"):
        set_up(root, cache)
    assert sorted(decoded) == val  # val only, once although it is the test split too; no training image
    assert "data check: decoded 4 'val' images in " in caplog.text
    assert (cache / ".decoded_ok_val.tsv").is_file() and not (root / ".decoded_ok_val.tsv").exists()

    decoded.clear()
    set_up(root, cache)
    assert decoded == []  # unchanged: nothing decoded again

    os.utime(root / "val/b/1.jpg", ns=(1, 1))  # rewritten in place: a new mtime
    (root / "val/a/text.jpg").write_text("user,label\nalice,3\n")  # a text file named .jpg
    with pytest.raises(ConfigError) as refused:
        set_up(root, cache)
    message = str(refused.value)
    assert message.startswith(f"data.root: {root}/val/a/text.jpg: ") and "cannot identify image file" in message
    assert sorted(decoded) == ["val/a/text.jpg", "val/b/1.jpg"]

    decoded.clear()
    with pytest.raises(ConfigError):  # a file that failed is never taken as checked
        set_up(root, cache)
    assert decoded == ["val/a/text.jpg"]

    decoded.clear()
    (root / "val/a/text.jpg").unlink()
    set_up(root, cache)
    assert decoded == []


def test_every_unreadable_file_is_logged_and_the_first_named(tmp_path, caplog):
    root = two_classes(tmp_path / "data")
    for name in ("x.jpg", "y.jpg"):
        (root / "val/b" / name).write_bytes(jpeg(0)[:300])  # truncated
    with caplog.at_level("ERROR"), pytest.raises(ConfigError) as refused:
        set_up(root, tmp_path / "cache")
    assert str(refused.value).startswith(f"data.root: {root}/val/b/x.jpg: ")
    others = "1 more unreadable in it, logged above"
    assert str(refused.value).endswith(f"(an image of the 'val' split, which is never skipped; {others}: fix or remove it)")
    assert f"data check: unreadable 'val' image: {root}/val/b/y.jpg: " in caplog.text


def test_another_decoders_cache_is_not_read(tmp_path, decoded):
    root, cache = two_classes(tmp_path / "data"), tmp_path / "cache"
    set_up(root, cache)
    written = cache / ".decoded_ok_val.tsv"
    written.write_text(written.read_text().replace("Pillow ", "Pillow 0.0 was "))
    decoded.clear()
    set_up(root, cache)
    assert len(decoded) == 4
