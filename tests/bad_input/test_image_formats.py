"""Every image format through every path that turns a file into pixels: the loader's batch
decode (training, validation, test, the figures' picks), the statistics pass, prepare's encode,
predict's load and figure 1's reader. Each must give Pillow's own 8-bit RGB conversion of the
file, after the same central square, up to the rule of ``alexnet.data.decode``: 16-bit keeps its
high byte, alpha is composited on white, an animation gives its first frame, and only predict
turns a photo upright by its EXIF orientation. What no rule turns into RGB is unreadable, alike
in every path. The folder listing takes every format as an image, and the dataset check counts
each conversion the rule will make."""

import io
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.io import encode_jpeg

from alexnet.data import check
from alexnet.data import decode as decode_module
from alexnet.data.batches import collate
from alexnet.data.datasets import ImageRecords, SkipUnreadable
from alexnet.data.decode import UnreadableImage, central_square, describe
from alexnet.data.prepare import encode
from alexnet.data.records import Records
from alexnet.data.sources import FolderSource
from alexnet.data.stats import compute_stats
from alexnet.evaluation.predict import load_image
from alexnet.experiments.fig1 import read_image

R = 48  # the central square every path makes: smaller than both sides of the 90x70 originals


def original() -> Image.Image:
    """90x70 RGB, smooth with noise: not square (the crop and the rotation matter), not flat."""
    y, x = np.mgrid[0:70, 0:90]
    noise = np.random.default_rng(0).integers(0, 40, (70, 90, 3))
    return Image.fromarray((np.stack([x * 2.5, y * 3, 255 - x - y], -1) + noise).clip(0, 255).astype(np.uint8))


def with_alpha(im: Image.Image) -> Image.Image:
    """Alpha from 0 (left) to 255 (right): the hidden colours differ from the white they are shown on."""
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, im.width).astype(np.uint8), (im.height, 1)))
    out = im.copy()
    out.putalpha(alpha)
    return out


def on_white(im: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA")).convert("RGB")


def as_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kw)
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [
        original().quantize(64),
        Image.new("RGB", (90, 70), (255, 0, 0)).quantize(4),
        Image.new("RGB", (90, 70), (0, 0, 255)).quantize(4),
    ]
    return as_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: the stored pixels are to be turned 90 degrees clockwise
    return as_bytes(original(), "JPEG", quality=95, exif=exif.tobytes())


def floating_point() -> bytes:
    gray = np.asarray(original().convert("L")).astype(np.float32) / 255
    return as_bytes(Image.fromarray(gray, mode="F"), "TIFF")  # 8-bit v -> v / 255 (Pillow: mode F)


def sixteen_bit() -> bytes:
    gray = np.asarray(original().convert("L")).astype(np.uint16)
    return as_bytes(Image.fromarray(gray * 257), "PNG")  # 8-bit v -> 16-bit v * 257 (Pillow: mode I;16)


# name: (file bytes, the reference: Pillow's 8-bit RGB of the file (or of its 8-bit original), by the rule)
def formats() -> dict:
    rgb = original()
    pillow = lambda data: Image.open(io.BytesIO(data)).convert("RGB")
    files = {
        "plain.jpg": (as_bytes(rgb, "JPEG", quality=90), pillow),
        "gray.jpg": (as_bytes(rgb.convert("L"), "JPEG", quality=90), pillow),
        "cmyk.jpg": (as_bytes(rgb.convert("CMYK"), "JPEG", quality=90), pillow),
        "rgb8.png": (as_bytes(rgb, "PNG"), pillow),
        "gray16.png": (sixteen_bit(), lambda data: rgb.convert("L").convert("RGB")),  # the 8-bit original
        "float.tif": (floating_point(), lambda data: rgb.convert("L").convert("RGB")),  # the 8-bit original
        "palette.png": (as_bytes(rgb.quantize(32), "PNG"), pillow),
        "la.png": (as_bytes(with_alpha(rgb.convert("L")), "PNG"), lambda data: on_white(Image.open(io.BytesIO(data)))),
        "rgba.png": (as_bytes(with_alpha(rgb), "PNG"), lambda data: on_white(Image.open(io.BytesIO(data)))),
        "animated.gif": (animated_gif(), pillow),  # Pillow opens the first frame
        "lossy.webp": (as_bytes(rgb, "WEBP", quality=90), pillow),
        "exif6.jpg": (exif_rotated(), pillow),  # not turned: the paper's pipeline never read EXIF
    }
    return files


BAD = {
    "empty.jpg": (b"", "empty file"),
    "truncated.jpg": (None, "truncated"),
    "text.jpg": (b"user,label\nalice,3\n", "cannot identify"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Path, torch.Tensor]]:
    """name -> (file, the expected (3, R, R) uint8), written once for every path's test."""
    folder = tmp_path_factory.mktemp("formats")
    out = {}
    for name, (data, reference) in formats().items():
        (folder / name).write_bytes(data)
        out[name] = (folder / name, square(reference(data)))
    for name, (data, _) in BAD.items():
        (folder / name).write_bytes(data if data is not None else as_bytes(original(), "JPEG")[:700])
    return out


def square(im: Image.Image) -> torch.Tensor:
    return central_square(torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).contiguous(), R)


def assert_same(name: str, got: torch.Tensor, expected: torch.Tensor, tolerance: float = 0) -> None:
    assert got.dtype == torch.uint8 and tuple(got.shape) == (3, R, R), (name, got.dtype, got.shape)
    diff = (got.int() - expected.int()).abs().float().mean().item()
    assert diff <= tolerance, f"{name}: mean |difference| {diff:.2f} from Pillow's 8-bit RGB"


def records(paths: list[Path]) -> Records:
    return Records.of_files(["c"], paths[0].parent, [(str(p), 0) for p in paths])


def test_the_references_are_what_the_rule_says(files):
    """The rules are not Pillow's plain convert("RGB") where they say otherwise: else these tests prove nothing."""
    for name in ("gray16.png", "float.tif", "rgba.png", "la.png"):
        path, expected = files[name]
        plain = square(Image.open(path).convert("RGB"))
        assert (plain.int() - expected.int()).abs().float().mean() > 20, name
    assert describe(files["animated.gif"][0].read_bytes()) == "GIF P, first of 3 frames"
    assert describe(files["gray16.png"][0].read_bytes()) == "PNG I;16"
    assert describe(files["float.tif"][0].read_bytes()) == "TIFF F"


def test_the_loaders_batch_decode(files):
    """Training, validation, test (one dataset class) and the figures' picks (its __getitem__)."""
    names = list(files)
    dataset = ImageRecords(records([files[n][0] for n in names]), R)
    batch = dataset.__getitems__(list(range(len(names))))
    for i, name in enumerate(names):
        assert_same(name, batch.images[i], files[name][1])
        assert_same(name, dataset[i][0], files[name][1])


def test_the_statistics_pass(files):
    for name, (path, expected) in files.items():
        stats = compute_stats(SkipUnreadable(ImageRecords(records([path]), R)), 0, collate_fn=collate)
        assert torch.equal(stats["mean_image"], expected.float()), name


def test_prepares_encode(files):
    """The store's JPEG of each file is, byte for byte, the JPEG of the reference pixels."""
    for name, (path, expected) in files.items():
        assert encode(path.read_bytes(), R, 90) == encode_jpeg(expected, quality=90).numpy().tobytes(), name


def test_predicts_load_and_figure_1s_reader(files):
    """predict also turns the photo upright by its EXIF orientation; figure 1 does not."""
    for name, (path, expected) in files.items():
        assert_same(name, read_image(path, R), expected)
        if name != "exif6.jpg":
            assert_same(name, load_image(path, R), expected)
    path, unturned = files["exif6.jpg"]
    upright = square(ImageOps.exif_transpose(Image.open(path)))
    assert_same("exif6.jpg", load_image(path, R), upright, tolerance=0.5)  # libjpeg-turbo's turn against Pillow's
    assert (upright.int() - unturned.int()).abs().float().mean() > 20


def test_what_no_rule_reads_is_unreadable_in_every_path(files):
    folder = next(iter(files.values()))[0].parent
    good = files["plain.jpg"][0]
    for name, (_, reason) in BAD.items():
        path = folder / name
        dataset = ImageRecords(records([path, good]), R)
        with pytest.raises(UnreadableImage, match=f"{name}: .*{reason}"):  # validation and test: named, refused
            dataset.__getitems__([0, 1])
        skipping = SkipUnreadable(ImageRecords(records([path, good]), R))  # training: skipped, named
        batch = collate(skipping.__getitems__([0, 1]))
        assert len(batch[2]) == 1 and name in batch[2][0] and reason in batch[2][0]
        for read in (lambda p: encode(p.read_bytes(), R, 90), lambda p: load_image(p, R), lambda p: read_image(p, R)):
            with pytest.raises(UnreadableImage, match=reason):
                read(path)


def test_more_than_max_pixels_is_refused_in_one_line(files, monkeypatch):
    monkeypatch.setattr(decode_module, "MAX_PIXELS", 90 * 70 - 1)
    for name in ("plain.jpg", "rgb8.png", "cmyk.jpg"):  # libjpeg-turbo's path and Pillow's
        with pytest.raises(
            UnreadableImage, match=r"^90x70 pixels, more than the 6299 decoded here \(alexnet.data.decode.MAX_PIXELS\)$"
        ):
            load_image(files[name][0], R)


def test_the_listing_takes_every_format_and_the_check_counts_each_conversion(files, tmp_path):
    images = tmp_path / "data" / "train" / "c"
    shutil.copytree(files["plain.jpg"][0].parent, images)  # every format, and the unreadable files
    shutil.copyfile(files["rgb8.png"][0], images / "png.JPEG")  # a PNG named as a JPEG
    report = check.full(FolderSource(tmp_path / "data"), ["train"])
    assert report.counts == {"train": {"c": len(files) + len(BAD) + 1}}  # GIF, WebP and TIFF included
    assert report.formats == Counter({"JPEG": 5, "PNG": 6, "GIF": 1, "TIFF": 1, "WEBP": 1})  # truncated.jpg: a JPEG header
    assert report.misnamed == Counter({"PNG named .jpeg": 1})
    conversions = {"grayscale": 4, "palette": 2, "alpha": 2, "CMYK": 1, "16-bit": 1, "float": 1, "animated": 1, "EXIF-rotated": 1}
    assert report.conversions == Counter(conversions)  # gray.jpg, gray16.png, float.tif, la.png are grayscale
    assert report.empty_files == ["train/c/empty.jpg"] and report.unidentified == ["train/c/text.jpg"]
