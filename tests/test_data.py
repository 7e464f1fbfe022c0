"""The loading code: ILSVRC folder layout, the paper's crops/flips/PCA noise/mean, the built-in dataset."""

import io
import os
import pickle
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import data_module
from PIL import Image

from alexnet.data import synthetic
from alexnet.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, BatchAugment, crop_offsets
from alexnet.data.batches import FilledBatch, Ring, collate
from alexnet.data.datasets import ImageRecords, SkipUnreadable
from alexnet.data.decode import UnreadableImage, central_square, decode, decode_into
from alexnet.data.records import Records
from alexnet.data.unreadable import TooManyUnreadableImages, UnreadableCounter


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root, train_per_class=6, val_per_class=2, image_size=80, seed=3)
    return root


def test_synthetic_set_is_in_ilsvrc_layout(tiny_synthetic):
    wnids = sorted(p.name for p in (tiny_synthetic / "train").iterdir())
    assert len(wnids) == 10 and all(w.startswith("s9") and len(w) == 9 for w in wnids)
    assert sorted(p.name for p in (tiny_synthetic / "val").iterdir()) == wnids
    files = list((tiny_synthetic / "train" / wnids[0]).glob("*.JPEG"))
    assert len(files) == 6
    with Image.open(files[0]) as img:
        assert img.format == "JPEG" and img.size == (80, 80) and img.mode == "RGB"


def test_synthetic_set_is_deterministic_from_its_seed(tiny_synthetic, tmp_path):
    synthetic.generate(tmp_path / "again", 6, 2, 80, seed=3)
    synthetic.generate(tmp_path / "other", 6, 2, 80, seed=4)
    name = "train/s90000004/s90000004_00003.JPEG"
    assert (tmp_path / "again" / name).read_bytes() == (tiny_synthetic / name).read_bytes()
    assert (tmp_path / "other" / name).read_bytes() != (tiny_synthetic / name).read_bytes()


def test_synthetic_classes_differ_in_pixels_not_only_labels(tiny_synthetic):
    # The mean image of each class differs: the classes carry signal.
    means = []
    for wnid in sorted(p.name for p in (tiny_synthetic / "train").iterdir()):
        imgs = [np.asarray(Image.open(f), dtype=np.float32) for f in (tiny_synthetic / "train" / wnid).glob("*.JPEG")]
        means.append(np.mean(imgs, axis=0).mean((0, 1)))
    spread = np.std(means, axis=0)
    assert spread.max() > 5.0


def datamodule(root, **kw):
    small = dict(num_classes=10, resize=76, crop_size=67, batch_size=4, num_workers=0, stats_images=0)
    return data_module(root, **{**small, **kw})


def test_class_index_is_sorted_folder_order_and_names_come_from_labels(tiny_synthetic):
    dm = datamodule(tiny_synthetic)
    dm.setup("fit")
    assert dm.datasets["train"].classes == sorted(w for w, _ in synthetic.CLASSES)
    assert dm.source.kind == "folder"
    assert dm.class_names()[0] == "stripes disc"
    x, y = dm.datasets["train"][0]
    assert x.dtype == torch.uint8 and x.shape == (3, 76, 76) and y == 0


def test_missing_root_is_a_clear_error(tmp_path):
    dm = datamodule(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="data.root: folder .*nowhere does not exist"):
        dm.setup("fit")


def test_missing_split_is_a_clear_error(tmp_path, tiny_synthetic):
    (tmp_path / "train").symlink_to(tiny_synthetic / "train")
    with pytest.raises(FileNotFoundError, match="no 'val' folder"):
        datamodule(tmp_path).setup("fit")


def test_class_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="data.root: .*train: Found no valid file for the classes n01440764"):
        datamodule(tmp_path).setup("fit")


def test_class_count_mismatch_is_a_clear_error(tiny_synthetic):
    with pytest.raises(ValueError, match="data.num_classes is 1000 but data.root .* has 10 classes in its 'train' split"):
        datamodule(tiny_synthetic, num_classes=1000).setup("fit")


def test_synthetic_datamodule_never_reads_an_ungenerated_folder(tmp_path):
    dm = data_module(tmp_path, "synthetic", train_per_class=1, val_per_class=1, num_workers=0)
    with pytest.raises(FileNotFoundError, match="not generated"):
        dm.setup("fit")
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 10


def test_central_square_rescales_the_shorter_side_then_crops():
    img = torch.zeros(3, 300, 500, dtype=torch.uint8)
    img[:, :, 250] = 255  # a vertical line in the middle column
    out = central_square(img, 256)
    assert out.shape == (3, 256, 256)
    assert out[:, :, 126:130].float().mean() > 50  # still in the centre


def augment(**kw):
    mean = torch.zeros(3, 1, 1)
    return BatchAugment(mean, crop_size=4, **kw)


def test_random_crops_are_windows_of_the_image_and_flips_are_reflections():
    torch.manual_seed(0)
    x = torch.arange(8 * 8, dtype=torch.uint8).view(1, 1, 8, 8).expand(64, 3, 8, 8).contiguous()
    out = augment(flip=True).train_batch(x)
    assert out.shape == (64, 3, 4, 4)
    n_flipped = 0
    for crop in out:
        c = crop[0].long()
        top, left = divmod(int(c.min()), 8)
        window = x[0, 0, top : top + 4, left : left + 4].long()
        if torch.equal(c, window):
            continue
        assert torch.equal(c, window.flip(-1))
        n_flipped += 1
    assert 16 < n_flipped < 48  # about half
    no_flip = augment(flip=False).train_batch(x)
    assert all(torch.all(c[0, :, 1:] - c[0, :, :-1] == 1) for c in no_flip)


def test_ten_crops_are_the_corners_centre_and_their_reflections():
    x = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    out = augment().eval_batch(x, crops=10)
    assert out.shape == (2, 10, 3, 4, 4)
    offsets = crop_offsets(8, 4)
    assert offsets == [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
    for i, (top, left) in enumerate(offsets):
        torch.testing.assert_close(out[:, i], x[:, :, top : top + 4, left : left + 4].float())
        torch.testing.assert_close(out[:, i + 5], x[:, :, top : top + 4, left : left + 4].float().flip(-1))
    torch.testing.assert_close(augment().eval_batch(x, crops=1), out[:, 4])


def test_per_pixel_mean_is_subtracted_at_the_same_position_as_the_crop():
    mean = torch.arange(64, dtype=torch.float32).view(1, 8, 8).expand(3, 8, 8)
    x = mean.to(torch.uint8).unsqueeze(0).expand(16, 3, 8, 8)
    out = BatchAugment(mean, crop_size=5, flip=True).train_batch(x)
    assert out.abs().max() == 0  # image == mean image, whatever the crop and flip


def test_pca_noise_is_one_colour_shift_per_image_with_the_papers_covariance():
    torch.manual_seed(0)
    eigval, eigvec = torch.tensor(IMAGENET_EIGVAL) * 255, torch.tensor(IMAGENET_EIGVEC)
    aug = BatchAugment(torch.zeros(3, 1, 1), crop_size=4, flip=False, pca_eigval=eigval, pca_eigvec=eigvec, pca_std=0.1)
    x = torch.full((20000, 3, 4, 4), 100, dtype=torch.uint8)
    shift = aug.train_batch(x) - 100.0
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-4)  # the same for every pixel
    rgb = shift[:, :, 0, 0]
    # Cov(shift) = P diag((0.1 * lambda)^2) P^T
    expected = eigvec @ torch.diag((0.1 * eigval) ** 2) @ eigvec.T
    torch.testing.assert_close(torch.cov(rgb.T), expected, rtol=0.05, atol=0.05)
    assert aug.train_batch(x).mean().item() == pytest.approx(100, abs=0.1)


def test_dataset_statistics_are_computed_once_and_cached(tiny_synthetic):
    dm = datamodule(tiny_synthetic)
    dm.setup("fit")
    caches = list(tiny_synthetic.glob(".stats_train_76px_*.pt"))
    assert len(caches) == 1
    stats = torch.load(caches[0])
    assert stats["mean_image"].shape == (3, 76, 76)
    assert int(stats["images"]) == 60
    eigval, eigvec = stats["eigval"], stats["eigvec"]
    assert torch.all(eigval[:-1] >= eigval[1:]) and eigval.min() > 0
    torch.testing.assert_close(eigvec.T @ eigvec, torch.eye(3), atol=1e-4, rtol=0)
    # Mean image equals a direct computation over the training images.
    direct = torch.stack([dm.datasets["train"][i][0].float() for i in range(60)]).mean(0)
    torch.testing.assert_close(stats["mean_image"], direct, atol=1e-3, rtol=0)


@pytest.mark.parametrize("mean_shape", [(3, 12, 12), (3, 1, 1)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])  # the loader's batches are channels-last
def test_the_cpu_crop_path_equals_the_single_gather(mean_shape, layout):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (32, 3, 12, 12), dtype=torch.uint8).contiguous(memory_format=layout)
    aug = BatchAugment(torch.rand(mean_shape) * 255, crop_size=7, flip=True)
    top, left = torch.randint(0, 6, (2, 32))
    flipped = torch.rand(32) < 0.5
    torch.testing.assert_close(aug.crops_cpu(x, top, left, flipped), aug.crops_gather(x, top, left, flipped))
    noise = torch.randn(32, 3) * 20  # PCA colour noise: one RGB shift per image
    torch.testing.assert_close(aug.crops_cpu(x, top, left, flipped, noise), aug.crops_gather(x, top, left, flipped, noise))
    torch.testing.assert_close(
        aug.crops_cpu(x, top, left, flipped, noise) - aug.crops_cpu(x, top, left, flipped),
        noise[:, :, None, None].expand(32, 3, 7, 7),
    )


def test_a_ring_hands_a_tensor_out_again_only_after_depth_calls():
    ring = Ring(3)
    first = [ring.take((4, 5), torch.float32) for _ in range(3)]
    assert len({t.data_ptr() for t in first}) == 3
    assert [ring.take((4, 5), torch.float32) is t for t in first] == [True, True, True]  # calls 4, 5, 6: in turn
    other = ring.take((2, 5), torch.float32)  # another shape: a new ring, the old tensors are never written again
    assert other.data_ptr() not in {t.data_ptr() for t in first}
    assert pickle.loads(pickle.dumps(ring)).slots == []  # a spawned worker gets no memory of the main process


def test_an_augmented_training_batch_stays_intact_until_the_next_but_one():
    torch.manual_seed(0)
    aug = BatchAugment(torch.zeros(3, 1, 1), crop_size=6, flip=True)
    x = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    previous, current = aug.train_batch(x), aug.train_batch(x)
    copy = previous.clone()
    assert previous.data_ptr() != current.data_ptr()
    assert torch.equal(previous, copy)  # still intact while the next one is made
    ten = [aug.eval_batch(x, crops=10) for _ in range(3)]  # the test crops are the caller's to keep
    assert len({t.data_ptr() for t in ten}) == 3 and all(torch.equal(t, ten[0]) for t in ten)


def broken_records(tmp_path, n_good=5):
    good = tmp_path / "good.JPEG"
    synthetic.render(0, 32, np.random.default_rng(0)).save(good)
    (tmp_path / "bad.JPEG").write_bytes(good.read_bytes()[:300])
    samples = [(str(good), 0)] * n_good + [(str(tmp_path / "bad.JPEG"), 1)]
    return Records.of_files(["a", "b"], tmp_path, samples)


def test_an_unreadable_image_names_its_file_and_training_skips_it(tmp_path):
    records = broken_records(tmp_path)
    dataset = ImageRecords(records, resize=32)
    with pytest.raises(UnreadableImage, match="bad.JPEG: .*truncated"):
        dataset[5]
    x, y, skipped = SkipUnreadable(dataset)[5]  # the next readable image takes its place
    assert x.shape == (3, 32, 32) and y == 0 and len(skipped) == 1 and "bad.JPEG" in skipped[0]
    xb, yb, sk = collate([SkipUnreadable(dataset)[i] for i in range(6)])
    assert xb.shape == (6, 3, 32, 32) and yb.tolist() == [0] * 6 and len(sk) == 1
    # The loader's batched fetch: decoded straight into the batch's slots, the same pixels.
    xs, ys, sks = collate(SkipUnreadable(dataset).__getitems__(list(range(6))))
    assert torch.equal(xs, xb) and ys.tolist() == yb.tolist() and sks == sk
    xb, yb = collate([dataset[i] for i in range(5)])
    assert xb.shape == (5, 3, 32, 32) and torch.equal(collate(dataset.__getitems__(list(range(5))))[0], xb)


def test_unreadable_training_images_are_counted_per_epoch_up_to_the_limit(caplog):
    counter = UnreadableCounter(limit=2)
    with caplog.at_level("WARNING"):
        counter.add("epoch 0", ["a.JPEG: truncated", "b.JPEG: truncated"])
        counter.add("epoch 1", ["a.JPEG: truncated"])  # a new epoch reports the last one
    assert "epoch 0: skipped 2 unreadable training images (data.max_bad_images=2)" in caplog.text
    with pytest.raises(
        TooManyUnreadableImages, match="data.max_bad_images: 3 unreadable training images in epoch 1, more than the 2"
    ):
        counter.add("epoch 1", ["b.JPEG: truncated", "c.JPEG: truncated"])


def jpeg_bytes(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **save)
    return buffer.getvalue()


def test_store_jpegs_decode_into_the_batch_slot_exactly_as_torchvision_decodes_them():
    """The store's 256x256 JPEGs go through simplejpeg straight into the batch; anything else
    (other sizes, PNG, CMYK, grayscale) through torchvision/PIL. Same pixels either way."""
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8), np.ones((1, 8, 8), np.uint8))
    rgb = Image.fromarray(smooth.transpose(1, 2, 0))
    cases = {
        "store jpeg": jpeg_bytes(rgb, format="JPEG", quality=90),
        "grayscale jpeg": jpeg_bytes(rgb.convert("L"), format="JPEG"),
        "cmyk jpeg": jpeg_bytes(rgb.convert("CMYK"), format="JPEG"),
        "png": jpeg_bytes(rgb, format="PNG"),
        "larger jpeg": jpeg_bytes(rgb.resize((300, 256)), format="JPEG"),
    }
    for name, data in cases.items():
        slot = torch.full((256, 256, 3), 7, dtype=torch.uint8).permute(2, 0, 1)  # HWC memory, as in a batch
        decode_into(data, 256, slot)
        torch.testing.assert_close(slot, decode(data, 256), atol=0, rtol=0, msg=name)
    # The picture itself (JPEG at 4:2:0 blurs the colour of these random 8x8 blocks: ~10 levels).
    assert decode(cases["store jpeg"], 256).float().sub(torch.from_numpy(smooth).float()).abs().mean() < 20
    with pytest.raises(UnreadableImage):
        decode_into(cases["store jpeg"][: len(cases["store jpeg"]) // 2], 256, slot)


def test_decoding_on_the_batch_device_gives_the_loader_decoded_batches(tmp_path):
    """data.decode_on=device: the workers only read a store's JPEG bytes and the batch is decoded
    where it trains (nvJPEG on a GPU; here the CPU), giving the batches the loader path gives."""
    from alexnet.data.prepare import prepare

    synthetic.generate(tmp_path / "raw", train_per_class=4, val_per_class=3, image_size=80, seed=0)
    prepare(tmp_path / "raw", tmp_path / "store", workers=1, resize=64)
    batches = {}
    for decode_on in ("loader", "device"):
        dm = data_module(tmp_path / "store", resize=64, crop_size=56, batch_size=8, num_workers=0, decode_on=decode_on)
        dm.setup("fit")
        raw = next(iter(dm.val_dataloader()))
        if decode_on == "device":
            assert isinstance(raw[0], list) and raw[0][0].ndim == 1  # the workers sent bytes
        batches[decode_on] = dm.on_after_batch_transfer(dm.on_before_batch_transfer(raw, 0), 0)
    assert batches["device"][0].shape == (8, 3, 56, 56)  # the centre crops of validation
    torch.testing.assert_close(batches["device"][0], batches["loader"][0], atol=0, rtol=0)
    torch.testing.assert_close(batches["device"][1], batches["loader"][1])


def test_decoding_on_the_device_needs_a_prepared_store(tmp_path):
    synthetic.generate(tmp_path / "raw", train_per_class=2, val_per_class=1, image_size=40, seed=0)
    dm = data_module(tmp_path / "raw", resize=32, crop_size=28, num_workers=0, decode_on="device")
    with pytest.raises(ValueError, match="data.decode_on=device decodes a prepared store"):
        dm.setup("fit")


@pytest.mark.parametrize("workers", [0, 2])
def test_two_consecutive_batches_of_a_loader_share_no_memory(tiny_synthetic, workers):
    """In the main process the batches come from the loader's ring (a batch stays valid until two
    more are made); from workers, from fresh shared memory. Either way, never the same memory."""
    dm = datamodule(tiny_synthetic, num_workers=workers, mean="none", pca_lighting=False)
    dm.setup("fit")
    batches = iter(dm.loader("val", shuffle=False))  # 20 images: five batches of 4, in order
    first, second = next(batches)[0], next(batches)[0]
    copies = first.clone(), second.clone()
    spans = [(s.data_ptr(), s.data_ptr() + s.nbytes()) for s in (first.untyped_storage(), second.untyped_storage())]
    assert spans[0][1] <= spans[1][0] or spans[1][1] <= spans[0][0]
    next(batches)  # the next batch is made: the two held ones are intact
    assert torch.equal(first, copies[0]) and torch.equal(second, copies[1])
    assert not torch.equal(first, second)
    val = dm.datasets["val"]
    assert torch.equal(first, torch.stack([val[i][0] for i in range(4)]))  # the images, decoded one by one
    assert torch.equal(second, torch.stack([val[i][0] for i in range(4, 8)]))


def test_the_batched_fetch_hands_over_the_batch_it_filled_without_a_copy(tiny_synthetic):
    from torch.utils.data import default_collate

    dataset = ImageRecords(datamodule(tiny_synthetic).open().records("val"), resize=76)
    filled = dataset.__getitems__([0, 1, 2])
    assert isinstance(filled, FilledBatch) and len(filled) == 3
    x, y = collate(filled)
    assert x.data_ptr() == filled.images.data_ptr() and x.shape == (3, 3, 76, 76)
    torch.testing.assert_close(default_collate(filled)[0], x, atol=0, rtol=0)  # still a list of samples for any collate


def test_hidden_folders_are_neither_classes_nor_images(tmp_path, tiny_synthetic):
    shutil.copytree(tiny_synthetic, tmp_path / "data", symlinks=True)
    train = tmp_path / "data" / "train"
    photo = next(train.glob("s9*/*.JPEG"))
    for hidden in (train / ".ipynb_checkpoints", train / photo.parent.name / ".ipynb_checkpoints"):
        hidden.mkdir()
        shutil.copy(photo, hidden / "x-checkpoint.JPEG")
    (photo.parent / f"._{photo.name}").write_bytes(b"\0\5\26\7 macOS resource fork")  # AppleDouble: hidden, not an image
    dm = datamodule(tmp_path / "data", mean="none", pca_lighting=False)
    dm.setup("fit")
    assert dm.classes == sorted(w for w, _ in synthetic.CLASSES) and dm.num_classes == 10
    assert len(dm.datasets["train"]) == 60 and not any("/." in i or i.startswith(".") for i in dm.datasets["train"].ids)


def rewrite(photo: Path, size: int) -> None:
    """The same file name, other pixels and another byte size."""
    before = photo.stat().st_size
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(photo, format="JPEG")
    assert photo.stat().st_size != before


def test_the_statistics_are_recomputed_when_a_training_image_is_rewritten(tmp_path, tiny_synthetic):
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    for stale in root.glob(".stats_*"):
        stale.unlink()
    first = datamodule(root)
    first.setup("fit")
    (cache,) = root.glob(".stats_train_76px_*.pt")
    assert torch.load(cache)["classes"] == first.classes  # the cache says which classes it was computed for
    rewrite(next((root / "train").glob("s9*/*.JPEG")), 120)
    second = datamodule(root)
    second.setup("fit")
    caches = sorted(root.glob(".stats_train_76px_*.pt"))
    assert len(caches) == 2  # a new key: recomputed, not the old numbers
    assert not torch.equal(second.augment.mean, first.augment.mean)


@contextmanager
def read_only(folder: Path):
    """``folder`` made really read-only, for root too (root ignores permission bits): chattr +i,
    which the kernel enforces for everyone; chmod for other users. Checked by trying to write."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: no way to make a folder read-only for this test")
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if made.returncode:
            pytest.skip(f"chattr +i {folder} failed ({made.stderr.strip()}): needs CAP_LINUX_IMMUTABLE and ext4/xfs/btrfs")
        undo = lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)  # noqa: E731
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        undo = lambda: folder.chmod(mode)  # noqa: E731
    try:
        with pytest.raises(OSError):
            (folder / "probe").write_bytes(b"")
        yield folder
    finally:
        undo()


def test_a_read_only_data_root_keeps_its_caches_in_the_user_cache_folder(tmp_path, tiny_synthetic, monkeypatch, caplog):
    from alexnet.data.cache import user_cache

    root, xdg = tmp_path / "data", tmp_path / "xdg"
    shutil.copytree(tiny_synthetic, root)
    for stale in root.glob(".stats_*"):
        stale.unlink()
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    with read_only(root), caplog.at_level("INFO"):
        datamodule(root).setup("fit")
        mine = user_cache(root)
        assert mine.parent == xdg / "alexnet" and len(list(mine.glob(".stats_train_76px_*.pt"))) == 1
        assert f"{root} is not writable: its caches go to {mine}" in caplog.text and f"to {mine}/.stats_train" in caplog.text
        assert not list(root.glob(".stats_*"))
        caplog.clear()
        datamodule(root).setup("fit")  # read back from there: not computed again
        assert "wrote the training-set statistics" not in caplog.text


def test_a_cache_beside_read_only_data_is_read_from_there(tmp_path, tiny_synthetic, monkeypatch):
    root, xdg = tmp_path / "data", tmp_path / "xdg"
    shutil.copytree(tiny_synthetic, root)
    datamodule(root).setup("fit")  # computed while the folder was writable
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    with read_only(root):
        datamodule(root).setup("fit")
    assert not xdg.exists()


def test_an_unwritable_cache_dir_is_a_clear_error(tmp_path, tiny_synthetic):
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    with pytest.raises(ValueError, match="data.cache_dir: cannot write to .*blocked/caches"):
        datamodule(tiny_synthetic, cache_dir=str(tmp_path / "blocked" / "caches")).setup("fit")


def three_class_folder(root: Path) -> Path:
    for split, n in (("train", 4), ("val", 2)):
        for label, wnid in enumerate(("n00000001", "n00000002", "n00000003")):
            (root / split / wnid).mkdir(parents=True)
            for i in range(n):
                synthetic.render(label, 80, np.random.default_rng([label, i])).save(root / split / wnid / f"{i}.JPEG")
    return root


def test_num_classes_is_counted_from_the_class_folders_when_left_out(tmp_path):
    from longrun import train_here

    from alexnet.errors import ConfigError

    root = three_class_folder(tmp_path / "data")
    args = [
        "data=imagefolder",
        f"data.root={root}",
        "data.resize=76",
        "data.crop_size=67",
        "data.batch_size=4",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1",
        "test=false",
        "logger=none",
        "figures=false",
    ]
    train_here(tmp_path / "run", *args)
    weights = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert weights["net.classifier.fc8.weight"].shape[0] == 3
    with pytest.raises(ConfigError, match=f"^data.num_classes is 5 but data.root {root} has 3 classes in its 'train' split"):
        train_here(tmp_path / "wrong", *args, "data.num_classes=5")
