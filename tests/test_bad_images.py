"""Files that are no images, alike in every split and every command: an empty file, a truncated
JPEG and a text file named .JPEG. Training and the statistics pass skip and count them (up to
data.max_bad_images), validation and test refuse the run at its start naming the file (the loader
too, for a file spoiled since), prepare lists them."""

import io
import re
from pathlib import Path

import numpy as np
import pytest
from builders import data_module
from longrun import train_here

from alexnet.data import readable, synthetic
from alexnet.data.batches import image_memory
from alexnet.data.decode import UnreadableImage, decode, decode_into
from alexnet.data.unreadable import TooManyUnreadableImages
from alexnet.errors import ConfigError

KINDS = ("empty", "truncated", "text")
REASONS = {"empty": "empty file", "truncated": "truncated", "text": "cannot identify image file"}


def good_jpeg(label: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic.render(label, 80, np.random.default_rng([label, seed])).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def bad_bytes(kind: str) -> bytes:
    return {"empty": b"", "truncated": good_jpeg(0, 99)[:600], "text": b"user,label\nalice,3\n"}[kind]


def folder(root: Path, bad: dict[str, list[str]]) -> Path:
    """root/{train,val,test}/{n00000001,n00000002}/: 6, 2 and 2 good JPEGs per class, plus
    ``bad[split]``'s kinds of bad file as <kind>.JPEG in the first class."""
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for label, wnid in enumerate(("n00000001", "n00000002")):
            (root / split / wnid).mkdir(parents=True)
            for i in range(n):
                (root / split / wnid / f"{i}.JPEG").write_bytes(good_jpeg(label, i))
        for kind in bad.get(split, []):
            (root / split / "n00000001" / f"{kind}.JPEG").write_bytes(bad_bytes(kind))
    return root


def module(root: Path, **kw):
    small = dict(resize=64, crop_size=56, batch_size=5, num_workers=0, stats_images=0, test_split="test")
    return data_module(root, **{**small, **kw})


@pytest.mark.parametrize("kind", KINDS)
def test_every_decoder_path_raises_unreadable_image(kind):
    with pytest.raises(UnreadableImage, match=REASONS[kind]):
        decode(bad_bytes(kind), 64)
    with pytest.raises(UnreadableImage, match=REASONS[kind]):
        decode_into(bad_bytes(kind), 64, image_memory(64))


def test_training_skips_each_kind_and_names_it(tmp_path):
    dm = module(folder(tmp_path, {"train": list(KINDS)}), mean="none", pca_lighting=False)
    dm.setup("fit")
    skipped = [name for x, y, names in dm.train_dataloader() for name in names]
    assert len(skipped) == 3  # 15 files, 3 batches of 5: each bad one met once, its place taken by a good one
    for kind in KINDS:
        assert any(f"{kind}.JPEG: " in s and REASONS[kind] in s for s in skipped), (kind, skipped)


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("kind", KINDS)
def test_validation_and_test_refuse_naming_the_file(tmp_path, split, kind, monkeypatch):
    root = folder(tmp_path, {split: [kind]})
    # At the start of the run: before any training step, in one line naming the file and its split.
    with pytest.raises(ConfigError) as refused:
        module(root, mean="none", pca_lighting=False).setup("fit")
    message = str(refused.value)
    assert message.startswith(f"data.root: {root}/{split}/n00000001/{kind}.JPEG: ") and REASONS[kind] in message, message
    assert message.endswith(f"(an image of the '{split}' split, which is never skipped: fix or remove it)")
    assert "\n" not in message
    # And by the loader itself, for a file spoiled after that check.
    monkeypatch.setattr(readable, "check_evaluation_splits", lambda *args: [])
    dm = module(root, mean="none", pca_lighting=False)
    dm.setup("fit")
    with pytest.raises(UnreadableImage, match=f"{split}/n00000001/{kind}.JPEG: .*{REASONS[kind]}"):
        list(dm.val_dataloader() if split == "val" else dm.test_dataloader())


def test_the_statistics_pass_skips_and_counts_them_like_training(tmp_path, caplog):
    root = folder(tmp_path, {"train": list(KINDS)})
    with caplog.at_level("WARNING"):
        module(root).setup("fit")
    assert "the statistics pass: skipped 3 unreadable training images (data.max_bad_images=100)" in caplog.text
    assert all(f"{kind}.JPEG" in caplog.text for kind in KINDS)
    with pytest.raises(
        TooManyUnreadableImages,
        match="data.max_bad_images: 3 unreadable training images in the statistics pass, more than the 2 allowed",
    ):
        module(root, cache_dir=str(tmp_path / "other-cache"), max_bad_images=2).setup("fit")


def prepare(src: Path, out: Path, capsys) -> str:
    """``python -m alexnet.data.prepare SRC OUT`` in this process (test_prepare.py runs the command itself); its output."""
    from alexnet.data.prepare import main

    main([str(src), str(out), "--workers", "2", "--shard-size", "4", "--resize", "64"])
    return " ".join(capsys.readouterr().out.split())  # rich wraps long lines


def test_prepare_lists_every_kind_in_every_split_and_its_rerun_completes(tmp_path, capsys):
    src = folder(tmp_path / "src", {"train": list(KINDS), "val": list(KINDS)})
    prepare(src, tmp_path / "store", capsys)
    rows = [line.split("\t") for line in (tmp_path / "store" / "unreadable.tsv").read_text().splitlines()[1:]]
    listed = {(split, Path(image).name): reason for split, image, reason in rows}
    assert set(listed) == {(split, f"{kind}.JPEG") for split in ("train", "val") for kind in KINDS}
    for (_, name), reason in listed.items():
        assert REASONS[name.split(".")[0]] in reason
    again = prepare(src, tmp_path / "store", capsys)
    done = re.search(r"(\d+) of (\d+) shards already done", again)
    assert done and done[1] == done[2] and "6 unreadable images left out" in again, again  # nothing redone


def test_training_skips_them_and_one_in_validation_is_refused_before_training(tmp_path, caplog):
    common = [
        "data=imagefolder",
        "data.resize=76",
        "data.crop_size=67",
        "data.batch_size=5",
        "data.num_workers=0",
        "data.test_split=val",
        "trainer.max_epochs=1",
        "test=false",
        "logger=none",
        "figures=false",
    ]
    root = folder(tmp_path / "skipped", {"train": list(KINDS)})
    with caplog.at_level("INFO"):
        train_here(tmp_path / "run", *common, f"data.root={root}")
    assert "the statistics pass: skipped 3 unreadable training images" in caplog.text
    assert "epoch 0: skipped 3 unreadable training images (data.max_bad_images=100)" in caplog.text
    assert "data check: decoded 4 'val' images in " in caplog.text
    caplog.clear()
    root = folder(tmp_path / "refused", {"train": ["text"], "val": ["empty"]})
    bad = re.escape(f"data.root: {root}/val/n00000001/empty.JPEG: empty file (0 bytes) (an image of the 'val' split")
    with caplog.at_level("INFO"), pytest.raises(ConfigError, match=f"^{bad}[^\n]*$"):
        train_here(tmp_path / "refused-run", *common, f"data.root={root}")
    assert "unreadable training image" not in caplog.text  # refused before the statistics pass read a training image
