"""`python -m alexnet.data.prepare`: real archives from real photos, dirty files, a real kill
part-way, a resume that finishes without redoing or duplicating, and the store read back."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import webdataset as wds
from builders import data_module, data_node
from conftest import ROOT, fixture_dir
from hydra.utils import instantiate
from test_ilsvrc import build_archives, sample_photos, shared_photos  # noqa: F401 - a fixture

from alexnet.data import prepare as prepare_command
from alexnet.data.datasets import ImageRecords
from alexnet.data.decode import describe
from alexnet.data.store import StoreSource
from alexnet.errors import ConfigError

SHARDS = 20  # 100 train + 100 val images, 10 per shard


def prepare_args(src: Path, out: Path, *extra: str) -> list[str]:
    return [str(src), str(out), "--workers", "2", "--shard-size", "10", *extra]


def prepare_here(*args: str) -> str:
    """``python -m alexnet.data.prepare ARGS`` in this process; what it printed, unwrapped."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("COLUMNS", "200")
        prepare_command.main(list(args))
    return " ".join(printed.getvalue().split())


def markers(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.glob("*/shard-*.json")}


@pytest.fixture(scope="module")
def prepared(shared_photos, request):  # noqa: F811
    """Archives with dirty files, prepared by a command killed part-way (kill -9 of its process
    group) and a second run (in this process)."""
    src, out = fixture_dir(request, "src"), fixture_dir(request, "store") / "store"
    w = sorted(sample_photos(shared_photos, 100))
    dirty = {"train": {w[1]: "cmyk", w[2]: "gray", w[3]: "png"}, "val": {w[4]: "truncated"}}
    truth = build_archives(src, shared_photos, n_classes=100, dirty_files=dirty)
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alexnet.data.prepare", *prepare_args(src, out)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while len(markers(out)) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the workers die too
    proc.wait()
    before = markers(out)
    contents = {p: p.read_bytes() for p in before}
    resumed = prepare_here(*prepare_args(src, out))
    return {
        "src": src,
        "out": out,
        "truth": truth,
        "dirty": dirty,
        "before": before,
        "contents": contents,
        "resumed": resumed,
        "killed_stderr": proc.stderr.read(),
    }


def test_the_kill_landed_part_way(prepared):
    assert 3 <= len(prepared["before"]) < SHARDS, prepared["killed_stderr"]


def test_resume_finishes_without_redoing_done_shards(prepared):
    resumed, out = prepared["resumed"], prepared["out"]
    assert f"{len(prepared['before'])} of {SHARDS} shards already done" in resumed
    after = markers(out)
    assert len(after) == SHARDS and (out / "index.json").exists()
    for path, mtime in prepared["before"].items():
        assert after[path] == mtime and path.read_bytes() == prepared["contents"][path]  # untouched
    assert not list(out.rglob("*.tmp*"))  # no leftovers of the killed run


def test_every_image_is_stored_once_with_its_label(prepared):
    out, truth = prepared["out"], prepared["truth"]
    source = StoreSource(out)
    train, val = source.records("train"), source.records("val")
    assert len(train) == 100 and len(val) == 99  # the truncated val image is left out, and listed
    assert len(set(train.ids)) == 100 and len(set(val.ids)) == 99
    for image_id, label in zip(train.ids, train.labels):
        assert image_id.split("/")[0] == truth["wnids"][label]
    for image_id, label in zip(val.ids, val.labels):
        k = int(image_id.split("_")[-1].split(".")[0])
        assert truth["val_order"][k - 1] == truth["wnids"][label]
    dataset = ImageRecords(train, resize=256)
    images = [dataset[i][0] for i in range(len(dataset))]
    assert all(x.shape == (3, 256, 256) and x.dtype == torch.uint8 for x in images)


def test_unreadable_files_are_listed_and_counted_never_silently_dropped(prepared):
    out, resumed = prepared["out"], prepared["resumed"]
    index = json.loads((out / "index.json").read_text())
    assert index["splits"]["val"]["unreadable"] == 1 and index["splits"]["train"]["unreadable"] == 0
    manifest = (out / "unreadable.tsv").read_text().splitlines()
    assert manifest[0] == "split\timage\treason" and len(manifest) == 2
    split, image, reason = manifest[1].split("\t")
    k = int(image.split("_")[-1].split(".")[0])
    assert split == "val" and prepared["truth"]["val_order"][k - 1] in prepared["dirty"]["val"] and "truncated" in reason
    assert f"1 unreadable images left out, listed in {out / 'unreadable.tsv'}" in resumed


def test_cmyk_grayscale_and_png_named_jpeg_are_converted(prepared):
    out, truth = prepared["out"], prepared["truth"]
    index = json.loads((out / "index.json").read_text())
    expected: dict[str, int] = {}
    for data in truth["content"]["train"].values():
        kind = describe(data)
        if kind != "JPEG RGB":
            expected[kind] = expected.get(kind, 0) + 1
    assert expected["JPEG CMYK"] == 1 and expected["PNG RGB"] == 1 and expected["JPEG L"] >= 1
    assert index["splits"]["train"]["converted"] == expected
    train = StoreSource(out).records("train")
    gray_wnid = next(w for w, kind in prepared["dirty"]["train"].items() if kind == "gray")
    gray = ImageRecords(train, 256)[next(i for i, name in enumerate(train.ids) if name.startswith(f"{gray_wnid}/"))][0].float()
    assert (gray[0] - gray[1]).abs().mean() < 2 and (gray[1] - gray[2]).abs().mean() < 2  # R = G = B, stored as RGB


def test_shards_are_plain_webdataset(prepared):
    out = prepared["out"]
    urls = sorted(str(p) for p in (out / "train").glob("shard-*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == 100 and all(set(s) >= {"__key__", "jpg", "cls"} for s in samples)
    labels = {m["key"]: m["label"] for p in (out / "train").glob("*.json") for m in json.loads(p.read_text())["members"]}
    assert all(int(s["cls"]) == labels[s["__key__"]] for s in samples)


def test_a_rerun_with_other_options_is_refused(prepared):
    with pytest.raises(SystemExit, match="holds a store prepared from another source or with other options"):
        prepare_here(str(prepared["src"]), str(prepared["out"]), "--shard-size", "7")


def test_training_reads_the_store_when_it_exists_else_the_raw_layout(prepared, tmp_path, caplog):
    common = dict(
        root=str(prepared["src"]),
        num_classes=1000,
        cache_dir=str(tmp_path),
        resize=256,
        crop_size=227,
        num_workers=0,
        mean="none",
        pca_lighting=False,
    )
    with caplog.at_level("WARNING"):
        dm = data_module(store=str(prepared["out"]), **common)
        dm.setup("fit")
    assert dm.source.kind == "store" and len(dm.datasets["val"]) == 99
    assert "1 'val' images were unreadable at prepare time" in caplog.text  # said, not silent
    raw = data_module(store=str(tmp_path / "no-store-here"), **common)
    # The raw archives hold the truncated val image the store left out: refused before any training step.
    with pytest.raises(ConfigError, match=r"ILSVRC2012_img_val\.tar \[.*\]: .*truncated.* the 'val' split"):
        raw.setup("fit")
    assert raw.source.kind == "archives" and len(raw.datasets["val"]) == 100
    with pytest.raises(ValueError, match="data.resize is 128 but the store .* holds 256px images"):
        data_module(**{**common, "resize": 128, "crop_size": 112}, store=str(prepared["out"])).setup("fit")


@pytest.fixture(scope="module")
def small_store(request):
    """The synthetic set (10 classes) and its store, prepared in this process."""
    from alexnet.data import synthetic
    from alexnet.data.prepare import prepare

    root = fixture_dir(request, "raw") / "data"
    synthetic.generate(root, train_per_class=3, val_per_class=2, image_size=72, seed=0)
    prepare(root, root.parent / "data_store", workers=1, resize=64)
    return root, root.parent / "data_store"


def store_module(root: Path, store: Path | None):
    return data_module(
        root,
        store=str(store) if store else None,
        resize=64,
        crop_size=56,
        num_workers=0,
        mean="none",
        pca_lighting=False,
    )


def test_a_store_and_its_source_give_the_same_classes_and_fingerprint(small_store):
    root, store = small_store
    from_store, raw = store_module(root, store), store_module(root, None)
    from_store.setup("fit")
    assert from_store.source.kind == "store" and raw.open().kind == "folder"
    assert from_store.classes == raw.classes and len(from_store.classes) == 10
    assert from_store.train_fingerprint() == raw.train_fingerprint()


def copy_of(root: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(root, to)
    for cache in to.glob(".stats_*"):
        cache.unlink()
    return to


def test_a_store_prepared_from_other_classes_is_refused_naming_them(small_store, tmp_path):
    root, store = small_store
    other = copy_of(root, tmp_path / "other")
    for split in ("train", "val"):
        (other / split / "s90000003").rename(other / split / "n01440764")
    with pytest.raises(
        ValueError,
        match=(
            f"data.root: the store {store} was prepared from other classes than {other} holds: "
            r"1 classes of data.root missing from the store \(n01440764\), "
            r"1 in the store that data.root lacks \(s90000003\); "
            f"delete it and rerun python -m alexnet.data.prepare {other} {store}"
        ),
    ):
        store_module(other, store).setup("fit")


def test_a_store_prepared_from_other_images_is_refused_naming_the_split(small_store, tmp_path):
    from PIL import Image

    root, store = small_store
    other = copy_of(root, tmp_path / "other")
    photo = sorted((other / "train").glob("*/*.JPEG"))[0]
    Image.new("RGB", (90, 90), (10, 200, 30)).save(photo)  # same name, other pixels and size
    with pytest.raises(
        ValueError, match=f"data.root: the store {store} was prepared from other 'train' images than {other} holds now"
    ):
        store_module(other, store).setup("fit")


def test_a_store_older_than_its_source_record_is_compared_by_classes(small_store, tmp_path, caplog):
    import shutil

    root, store = small_store
    old = tmp_path / "old_store"
    shutil.copytree(store, old)
    index = json.loads((old / "index.json").read_text())
    for split in index["splits"].values():
        del split["source"]
    (old / "index.json").write_text(json.dumps(index))
    with caplog.at_level("WARNING"):
        store_module(root, old).setup("fit")
    assert f"store {old} predates source fingerprints: only its classes were compared" in caplog.text


@pytest.mark.parametrize("written", ["{root}/", "~/data", "~/data/"])
def test_data_root_as_typed_finds_its_store(small_store, monkeypatch, written):
    """data=imagenet's store is <root>_store however the root is typed: a trailing slash, or "~"
    (Hydra passes it verbatim; no shell expands it), never <root>/_store or <cwd>/~/data."""
    root, store = small_store
    monkeypatch.setenv("HOME", str(root.parent))
    node = data_node(written.format(root=root), "imagenet", num_classes=None, resize=64, crop_size=56, num_workers=0)
    assert node.store == str(store)
    dm = instantiate(node)
    assert dm.root == root and dm.open().kind == "store" and dm.open().root == store
    raw = data_module(
        written.format(root=root), store=None, resize=64, crop_size=56, num_workers=0, mean="none", pca_lighting=False
    )
    raw.setup("fit")
    assert raw.root == root and len(raw.dataset("train")) == 30
