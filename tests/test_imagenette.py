"""Real photos (Imagenette): the paper's crops, reflections, PCA noise and ten crops measured on
them, unreadable images in the raw layout, and a short CPU training run on them."""

import json
from pathlib import Path

import pytest
import torch
from builders import data_module, model_args
from conftest import OPTIM, SHARED_DATA, fixture_dir
from longrun import train_here

from alexnet.data import ImageFolderDataModule
from alexnet.data.augment import IMAGENET_EIGVEC, BatchAugment, crop_offsets
from alexnet.data.unreadable import TooManyUnreadableImages
from alexnet.errors import ConfigError

RESIZE, CROP = 76, 67


@pytest.fixture(scope="module")
def imagenette(request) -> ImageFolderDataModule:
    if not SHARED_DATA.is_dir():  # conftest's shared_data, for a module-scoped fixture
        pytest.skip(f"real photos not available: {SHARED_DATA} is absent (it sits beside the project in CI)")
    dm = data_module(
        SHARED_DATA / "imagenette-mini",
        num_classes=10,
        cache_dir=str(fixture_dir(request, "cache")),
        resize=RESIZE,
        crop_size=CROP,
        stats_images=0,
        num_workers=0,
        batch_size=64,
    )
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def photos(imagenette) -> torch.Tensor:
    """64 validation photos, uint8 (64, 3, 76, 76), every class."""
    val = imagenette.datasets["val"]
    return torch.stack([val[i][0] for i in range(0, len(val), len(val) // 64)][:64])


def without_pca(dm: ImageFolderDataModule) -> BatchAugment:
    return BatchAugment(dm.augment.mean, CROP, flip=True)


def test_training_set_colour_covariance_looks_like_imagenets(imagenette):
    stats = torch.load(next(Path(imagenette.cache_dir).glob(".stats_train_*.pt")))
    eigval, eigvec = stats["eigval"], stats["eigvec"]
    assert int(stats["images"]) == 1000
    # The first principal component of natural images is brightness, as in the published constants.
    assert abs(torch.dot(eigvec[:, 0], torch.tensor(IMAGENET_EIGVEC)[:, 0])) > 0.95
    assert 0.05 < eigval[0] < 0.5 and eigval[0] > 10 * eigval[2]


def test_crops_are_windows_of_the_mean_subtracted_photo_some_reflected(imagenette, photos):
    torch.manual_seed(0)
    out = without_pca(imagenette).train_batch(photos)
    assert out.shape == (64, 3, CROP, CROP) and out.dtype == torch.float32
    centred = photos.float() - imagenette.augment.mean
    span = RESIZE - CROP + 1
    flips = 0
    for crop, image in zip(out, centred):
        windows = image.unfold(1, CROP, 1).unfold(2, CROP, 1)  # (3, top, left, CROP, CROP): every window
        plain = (windows - crop[:, None, None]).abs().amax((0, 3, 4)) < 3e-3
        mirrored = (windows - crop.flip(-1)[:, None, None]).abs().amax((0, 3, 4)) < 3e-3
        assert plain.shape == (span, span) and (plain.any() or mirrored.any()), "a crop is no window of its photo"
        flips += bool(mirrored.any() and not plain.any())
    assert 16 < flips < 48
    # Per-pixel mean subtraction: the batch is centred (0..255 scale).
    assert out.mean((0, 2, 3)).abs().max() < 15


def test_cpu_and_gpu_crop_paths_agree_on_real_photos(imagenette, photos):
    aug = imagenette.augment
    top, left = torch.randint(0, RESIZE - CROP + 1, (2, 64))
    flipped = torch.rand(64) < 0.5
    torch.testing.assert_close(aug.crops_cpu(photos, top, left, flipped), aug.crops_gather(photos, top, left, flipped))


def test_pca_noise_on_real_photos_is_one_colour_shift_per_image_with_the_datasets_covariance(imagenette, photos):
    x = photos.repeat(40, 1, 1, 1)  # 2560 draws
    torch.manual_seed(1)
    noisy = imagenette.augment.train_batch(x)
    torch.manual_seed(1)
    clean = without_pca(imagenette).train_batch(x)  # same crops: the noise is drawn after them
    shift = noisy - clean
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-3)
    rgb = shift[:, :, 0, 0]
    eigval, eigvec = imagenette.augment.eigval, imagenette.augment.eigvec
    expected = eigvec @ torch.diag((0.1 * eigval) ** 2) @ eigvec.T  # alpha ~ N(0, 0.1)
    torch.testing.assert_close(torch.cov(rgb.T), expected, rtol=0.15, atol=0.02 * expected.abs().max().item())
    assert rgb.mean(0).abs().max() < 3 * (0.1 * eigval[0]) / len(rgb) ** 0.5 + 1e-3


def test_ten_crops_of_real_photos_are_the_corners_centre_and_reflections(imagenette, photos):
    aug = imagenette.augment
    ten = aug.eval_batch(photos, crops=10)
    assert ten.shape == (64, 10, 3, CROP, CROP)
    centred = photos.float() - aug.mean
    for i, (top, left) in enumerate(crop_offsets(RESIZE, CROP)):
        torch.testing.assert_close(ten[:, i], centred[:, :, top : top + CROP, left : left + CROP])
        torch.testing.assert_close(ten[:, i + 5], ten[:, i].flip(-1))
    torch.testing.assert_close(aug.eval_batch(photos, crops=1), ten[:, 4])
    # On photos the corners differ from each other: the ten views are not one view ten times.
    assert (ten[:, 0] - ten[:, 3]).abs().mean() > 5


def test_ten_crop_prediction_averages_the_softmax_of_the_ten_views(imagenette, photos):
    from alexnet.training.module import LitAlexNet

    torch.manual_seed(0)
    module = LitAlexNet(model=model_args(f"data.crop_size={CROP}"), optim=OPTIM).eval()
    assert module.net.num_classes == 10
    ten = imagenette.augment.eval_batch(photos[:4], crops=10)
    with torch.no_grad():
        expected = torch.softmax(module.net(ten.flatten(0, 1)), 1).view(4, 10, 10).mean(1)
        torch.testing.assert_close(module.predict_proba(ten, crops=10), expected)


def raw_folder(root: Path, per_class: int, bad_split: str | None) -> Path:
    """train/ and val/ of imagenette-mini as symlinks (no copy), plus one truncated JPEG in ``bad_split``."""
    for split, n in (("train", per_class), ("val", 3)):
        for folder in sorted((SHARED_DATA / "imagenette-mini" / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for photo in sorted(folder.glob("*.JPEG"))[:n]:
                (root / split / folder.name / photo.name).symlink_to(photo)
    if bad_split:
        photo = next((SHARED_DATA / "imagenette-mini" / bad_split).glob("*/*.JPEG"))
        (root / bad_split / photo.parent.name / "truncated.JPEG").write_bytes(photo.read_bytes()[:2000])
    return root


def test_an_unreadable_validation_image_refuses_the_run_at_its_start_naming_the_file(imagenette, tmp_path):
    root = raw_folder(tmp_path / "data", per_class=2, bad_split="val")
    dm = data_module(root, num_classes=10, resize=RESIZE, crop_size=CROP, num_workers=0, batch_size=64, stats_images=0)
    with pytest.raises(ConfigError, match=r"^data.root: .*/val/n\d+/truncated.JPEG: .*\(an image of the 'val' split"):
        dm.setup("fit")


def test_an_unreadable_training_image_is_skipped_counted_and_limited(imagenette, tmp_path, caplog):
    root = raw_folder(tmp_path / "data", per_class=10, bad_split="train")
    args = [
        "data=imagefolder",
        f"data.root={root}",
        "data.num_classes=10",
        f"data.resize={RESIZE}",
        f"data.crop_size={CROP}",
        "data.batch_size=101",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "+trainer.limit_val_batches=1",
        "test=false",
        "logger=none",
        "figures=false",
    ]
    with caplog.at_level("INFO"):
        # The statistics pass meets it first, and counts it as training does.
        with pytest.raises(
            TooManyUnreadableImages,
            match="data.max_bad_images: 1 unreadable training images in the statistics pass, more than the 0 allowed",
        ):
            train_here(tmp_path / "stopped", *args, "data.max_bad_images=0")
        assert "truncated.JPEG" in caplog.text  # the file is named in the log
        caplog.clear()
        train_here(tmp_path / "skipped", *args)
    log = caplog.text
    assert "skipped an unreadable training image" in log and "truncated.JPEG" in log
    assert "the statistics pass: skipped 1 unreadable training images (data.max_bad_images=100)" in log
    assert "epoch 0: skipped 1 unreadable training images (data.max_bad_images=100)" in log


@pytest.mark.slow
def test_a_short_cpu_run_on_real_photos_learns(imagenette, tmp_path):
    """Seven epochs of the demo's recipe (Caffe's init, lr 0.01) on 1000 photos, with
    model.lrn=false: at a 67-pixel crop fc6 sees 256 inputs instead of 9216, and with LRN (k=2)
    shrinking the signal too, the paper's N(0, 0.01) init stayed at chance for 700 steps on these
    photos (lr 0.002-0.01, batch 16-32); without LRN the validation error leaves chance within
    the first epochs and is well under the bound below by the seventh (76.7% on 2026-12-03, 75.7%
    after an eighth)."""
    run = tmp_path / "run"
    train_here(
        run,
        "data=imagenette",
        f"data.resize={RESIZE}",
        f"data.crop_size={CROP}",
        f"data.cache_dir={tmp_path}/cache",
        "data.batch_size=32",
        "data.num_workers=1",
        "model.lrn=false",
        "trainer.max_epochs=7",
        "logger=none",
        "figures=false",
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val/top1_err"] < 0.85  # chance: 0.90 with 10 classes; 300 images, one standard error ~1.7%
    assert summary["test_crops"] == 10 and summary["test/top1_err"] < 0.85 and summary["test/top5_err"] < summary["test/top1_err"]
