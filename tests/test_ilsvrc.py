"""The official ILSVRC archives, read in place: a train tar of per-synset tars, a flat val tar and
a devkit whose ground truth holds ILSVRC ids (not class indexes), built here from real photos."""

import io
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import data_module
from conftest import SHARED_DATA, fixture_dir
from PIL import Image

from alexnet.data.ilsvrc import read_devkit
from alexnet.data.records import ByteReader
from alexnet.data.sources import ArchiveSource, open_source


@pytest.fixture(scope="module")
def shared_photos() -> Path:
    """conftest's shared_data, for module-scoped fixtures (it is function-scoped)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photos not available: {SHARED_DATA} is absent (it sits beside the project in CI)")
    return SHARED_DATA


def sample_photos(shared_data: Path, n_classes: int) -> dict[str, Path]:
    """wnid -> its one original-size photo in imagenet-sample (the first n_classes by wnid)."""
    folders = sorted((shared_data / "imagenet-sample" / "val").iterdir())[:n_classes]
    return {f.name: next(f.glob("*.JPEG")) for f in folders}


def all_synsets(shared_data: Path) -> list[tuple[str, str]]:
    lines = (shared_data / "imagenet-sample" / "synsets.txt").read_text().splitlines()
    return [tuple(line.split(maxsplit=1)) for line in lines if line.strip()]


def ilsvrc_ids(wnids: list[str]) -> dict[str, int]:
    """ILSVRC ids follow the WordNet hierarchy, not wnid order: a fixed shuffle stands in for it."""
    ids = list(range(1, len(wnids) + 1))
    random.Random(2012).shuffle(ids)
    return dict(zip(wnids, ids))


def write_meta_mat(path: Path, synsets: list[tuple[str, str]], ids: dict[str, int]) -> None:
    import scipy.io

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
    rows = [(ids[w], w, name, f"gloss of {w}", 0, np.zeros(0), 0, 1300) for w, name in synsets]
    # Inner WordNet nodes (num_children > 0) are in meta.mat too, and must not become classes.
    rows += [(len(synsets) + k, f"n9999999{k}", f"inner node {k}", "", 2, np.array([1, 2]), 3, 0) for k in range(1, 4)]
    table = np.empty(len(rows), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        table[i] = row
    scipy.io.savemat(path, {"synsets": table})


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def dirty(photo: Path, kind: str) -> bytes:
    """The dirty files ILSVRC-2012 really has (CMYK JPEGs, a PNG named .JPEG, grayscale) and a truncated one."""
    data = photo.read_bytes()
    if kind == "truncated":
        return data[: len(data) // 3]
    buf = io.BytesIO()
    with Image.open(photo) as im:
        {
            "cmyk": lambda: im.convert("CMYK").save(buf, "JPEG"),
            "gray": lambda: im.convert("L").save(buf, "JPEG"),
            "png": lambda: im.save(buf, "PNG"),
        }[kind]()
    return buf.getvalue()


def write_flat_tar(path: Path, prefix: str, order: list[str], content: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for k, wnid in enumerate(order, start=1):
            add_bytes(tar, f"{prefix}_{k:08d}.JPEG", content[wnid])


def build_archives(
    root: Path, shared_data: Path, n_classes: int, dirty_files: dict[str, dict[str, str]] | None = None, year: int = 2012
) -> dict:
    """The official archives in ``root``: ILSVRC2012_img_{train,val}.tar and ILSVRC2012_devkit_t12.tar.gz;
    for 2010, ILSVRC2010_images_{train,val,test}.tar, ILSVRC2010_devkit-1.0.tar.gz and the test
    ground truth beside them. Each photo is its class's one image in every split; the val and test
    orders are shuffled. ``dirty_files``: {split: {wnid: kind}}. Returns what the labels must be."""
    dirty_files = dirty_files or {}
    photos = sample_photos(shared_data, n_classes)
    synsets = all_synsets(shared_data)
    ids = ilsvrc_ids([w for w, _ in synsets])
    splits = ("train", "val", "test") if year == 2010 else ("train", "val")
    stem = f"ILSVRC{year}_{'images' if year == 2010 else 'img'}"
    root.mkdir(parents=True, exist_ok=True)
    content = {
        split: {
            w: dirty(p, dirty_files[split][w]) if w in dirty_files.get(split, {}) else p.read_bytes() for w, p in photos.items()
        }
        for split in splits
    }
    with tarfile.open(root / f"{stem}_train.tar", "w") as train:
        for wnid, data in content["train"].items():
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as t:
                add_bytes(t, f"{wnid}_{ids[wnid]}.JPEG", data)
            add_bytes(train, f"{wnid}.tar", inner.getvalue())
    orders = {}
    for seed, split in enumerate(splits[1:]):
        orders[split] = sorted(photos)
        random.Random(seed).shuffle(orders[split])
        write_flat_tar(root / f"{stem}_{split}.tar", f"ILSVRC{year}_{split}", orders[split], content[split])
    devkit_name = "ILSVRC2010_devkit-1.0" if year == 2010 else "ILSVRC2012_devkit_t12"
    data = root / "devkit" / "data"
    data.mkdir(parents=True)
    write_meta_mat(data / "meta.mat", synsets, ids)
    (data / f"ILSVRC{year}_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in orders["val"]))
    if "test" in orders:  # 2010's test labels came as a separate download
        (root / "ILSVRC2010_test_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in orders["test"]))
    with tarfile.open(root / f"{devkit_name}.tar.gz", "w:gz") as tar:
        tar.add(root / "devkit", arcname=devkit_name)
    for p in sorted((root / "devkit").rglob("*"), reverse=True) + [root / "devkit"]:
        p.unlink() if p.is_file() else p.rmdir()
    wnids = sorted(w for w, _ in synsets)
    return {"photos": photos, "val_order": orders["val"], "orders": orders, "wnids": wnids, "content": content}


@pytest.fixture(scope="module")
def archives(shared_photos, request):
    root = fixture_dir(request, "ilsvrc2012")
    return root, build_archives(root, shared_photos, n_classes=500)


def test_devkit_maps_ilsvrc_ids_to_the_sorted_wnid_index(archives):
    root, truth = archives
    devkit = read_devkit(root / "ILSVRC2012_devkit_t12.tar.gz")
    assert devkit.wnids == truth["wnids"] and len(devkit.wnids) == 1000  # inner nodes left out
    assert devkit.names["n01440764"] == "tench"
    gt = devkit.ground_truth["val"]
    assert [devkit.by_ilsvrc_id[i] for i in gt] == truth["val_order"]
    assert gt != sorted(gt) and any(devkit.wnids.index(devkit.by_ilsvrc_id[i]) != i - 1 for i in gt)  # ids are not indexes


def test_archives_are_detected_and_read_in_place_with_correct_labels(archives):
    root, truth = archives
    source = open_source(root, cache_dir=root / "cache")
    assert isinstance(source, ArchiveSource) and source.splits() == ["train", "val"]
    reader = ByteReader()
    for split in ("train", "val"):
        records = source.records(split)
        assert len(records) == 500 and records.classes == truth["wnids"]
        for i in range(len(records)):
            image_id, file, offset, size, label = records.item(i)
            wnid = truth["wnids"][label]
            # The bytes at the indexed offset are exactly that class's photo.
            assert reader.read(file, offset, size) == truth["content"][split][wnid], (split, image_id, wnid)
    val = source.records("val")
    assert val.ids[0] == "ILSVRC2012_val_00000001.JPEG"
    assert [truth["wnids"][y] for y in val.labels] == truth["val_order"]
    assert source.names_of(["n01440764", "n01443537"]) == ["tench", "goldfish"]
    assert (root / "cache" / "ILSVRC2012_img_train.tar.index.tsv").exists()  # scanned once, then cached


def test_train_tar_members_are_listed_like_the_extracted_layout(archives):
    root, truth = archives
    train = open_source(root, cache_dir=root / "cache").records("train")
    wnid = truth["wnids"][int(train.labels[0])]
    assert train.ids[0].startswith(f"{wnid}/{wnid}_") and train.ids[0].endswith(".JPEG")


def test_datamodule_reads_the_archives_through_the_papers_preprocessing(archives, tmp_path):
    root, truth = archives
    dm = data_module(
        root,
        num_classes=1000,
        cache_dir=str(tmp_path),
        resize=64,
        crop_size=56,
        batch_size=8,
        num_workers=0,
        stats_images=50,
    )
    dm.setup("fit")
    assert dm.source.kind == "archives"
    assert dm.class_names()[:2] == ["tench", "goldfish"]
    # Every val image was decoded before any training step, keyed by the val tar (alexnet.data.readable).
    (decoded,) = tmp_path.rglob(".decoded_ok_val.tsv")
    assert len(decoded.read_text().splitlines()) == 1 + len(truth["val_order"])
    x, y = dm.datasets["val"][0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.uint8
    assert truth["wnids"][y] == truth["val_order"][0]
    x, y, skipped = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 64, 64) and skipped == []
    assert dm.augment.train_batch(x).shape == (8, 3, 56, 56)


def test_archives_without_a_devkit_are_a_clear_error(tmp_path):
    (tmp_path / "ILSVRC2012_img_val.tar").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has ILSVRC archives but no devkit"):
        open_source(tmp_path)


def test_val_count_must_match_the_ground_truth(archives, tmp_path):
    root, _ = archives
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_devkit_t12.tar.gz"):
        (tmp_path / name).symlink_to(root / name)
    with tarfile.open(tmp_path / "ILSVRC2012_img_val.tar", "w") as val:
        add_bytes(val, "ILSVRC2012_val_00000001.JPEG", b"x")
    with pytest.raises(ValueError, match="1 images but the val ground truth lists 500"):
        open_source(tmp_path, cache_dir=tmp_path / "cache").records("val")


def test_ilsvrc2010_archives_with_public_test_labels(shared_photos, tmp_path):
    truth = build_archives(tmp_path, shared_photos, n_classes=20, year=2010)
    source = open_source(tmp_path, cache_dir=tmp_path / "cache")
    assert source.splits() == ["test", "train", "val"]
    for split in ("val", "test"):
        records = source.records(split)
        assert records.ids[0] == f"ILSVRC2010_{split}_00000001.JPEG"
        assert [truth["wnids"][y] for y in records.labels] == truth["orders"][split]
    dm = data_module(
        tmp_path,
        num_classes=1000,
        test_split="test",
        cache_dir=str(tmp_path / "cache"),
        resize=64,
        crop_size=56,
        num_workers=0,
        mean="none",
        pca_lighting=False,
    )
    dm.setup("test")
    assert len(dm.datasets["test"]) == 20 and dm.datasets["test"].ids[0].startswith("ILSVRC2010_test_")


def test_read_only_archives_keep_their_caches_in_the_user_cache_folder(shared_photos, tmp_path, monkeypatch, caplog):
    """A shared, read-only ImageNet on a cluster: the archive indexes and the statistics go to
    $XDG_CACHE_HOME/alexnet/<the root's path>, and the log says so."""
    from test_data import read_only

    from alexnet.data.cache import user_cache

    root = tmp_path / "ilsvrc"
    build_archives(root, shared_photos, n_classes=20)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with read_only(root), caplog.at_level("INFO"):
        dm = data_module(root, resize=64, crop_size=56, num_workers=0, batch_size=4, stats_images=0)
        dm.setup("fit")
    mine = user_cache(root)
    assert mine.parent == tmp_path / "xdg" / "alexnet"
    for name in ("ILSVRC2012_img_train.tar.index.tsv", "ILSVRC2012_img_val.tar.index.tsv"):
        assert (mine / name).is_file() and not (root / name).exists()
    assert len(list(mine.glob(".stats_train_64px_*.pt"))) == 1
    assert f"{root} is not writable: its caches go to {mine}" in caplog.text
    assert dm.num_classes == 1000  # data.num_classes left out: counted from the devkit
