"""Image bytes to the paper's input: the central ``resize`` x ``resize`` patch (section 2), uint8 RGB.

"rescaled the image such that the shorter side was of length 256, and then cropped out the
central 256x256 patch". Pixels stay on the raw 0..255 scale; the batch ops (``augment``) do
the rest on the batch's device.

One rule for every caller (training, validation, test, the statistics pass, ``prepare``,
``predict``, the figures), ``to_rgb8``: any file it accepts becomes 8-bit RGB, whatever its format.

- 8-bit JPEGs (YCbCr or grayscale: nearly all of ImageNet) are decoded by libjpeg-turbo
  (torchvision, or simplejpeg straight into a batch slot); every other file by Pillow.
- 16-bit images keep their high byte (v >> 8, Pillow's own reading of 16-bit RGB PNGs), float
  images are read as 0..1 and scaled to 0..255: scaled, never clipped to 255.
- Palette, grayscale, CMYK and the like become RGB by Pillow's ``convert("RGB")``.
- Transparent images (an alpha channel, or a transparent palette or colour key) are composited
  on white (``BACKGROUND``): how a viewer or a web page shows them; ILSVRC has none.
- An animated image (GIF, WebP, APNG) gives its first frame; ``describe`` names it as such.
- EXIF orientation is a keyword, ``exif_orientation``, set per command: the paper's ImageNet
  preprocessing never looked at EXIF, so the loaders, the statistics pass and ``prepare`` leave
  it off (the stored pixels as they are); ``predict`` turns it on, so that a phone photo is seen
  upright, as every photo viewer shows it.
- More than ``MAX_PIXELS`` pixels, an empty file, a truncated one, a text file named .JPEG, or
  anything Pillow cannot turn into RGB raises ``UnreadableImage``. The caller knows which file it
  read: it names the file and decides (training skips and counts, validation and test stop,
  ``prepare`` lists it, ``predict`` skips it with one line).

torchvision.io's decoders (deprecated in torchvision 0.29 in favour of TorchCodec) are used in
this module only, and pyproject.toml bounds torchvision below 0.30: TorchCodec is a video
library whose image decoding would add a dependency for no measured gain, and simplejpeg
already decodes the store's JPEGs.
"""

import io
import warnings

import numpy as np
import simplejpeg
import torch
from PIL import ExifTags, Image, ImageOps
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as TF

# Pillow's own default decompression-bomb limit (Image.MAX_IMAGE_PIXELS, about 89.5 megapixels):
# such an image is 256 MiB as 8-bit RGB before the resize, several times that during it, in each
# loader worker. Checked here for both decoders (libjpeg-turbo has no limit of its own), from the header.
MAX_PIXELS = 89_478_485
BACKGROUND = (255, 255, 255)  # under transparent pixels: white, as a viewer or a web page shows them
FAST_COLORSPACES = ("YCbCr", "Gray")  # JPEGs libjpeg-turbo turns into 8-bit RGB exactly as Pillow does


class UnreadableImage(ValueError):
    """An image file that no decoder reads (truncated, empty, not an image, too large)."""


def decode(data: bytes, resize: int, *, exif_orientation: bool = False) -> torch.Tensor:
    """Any image file to its central resize x resize patch, uint8 (3, resize, resize) (``to_rgb8``'s rule)."""
    return central_square(to_rgb8(data, exif_orientation=exif_orientation), resize)


def to_rgb8(data: bytes, *, exif_orientation: bool = False) -> torch.Tensor:
    """Any image file to uint8 (3, H, W) RGB by the module's rule; ``UnreadableImage`` otherwise."""
    if not data:  # every decoder fails on it, some with messages about buffer lengths
        raise UnreadableImage("empty file (0 bytes)")
    if not libjpeg_turbo_reads(data):
        return decode_pil(data, exif_orientation)
    try:
        # torchvision's libjpeg-turbo decoder: 0.28 ms for a 256x256 JPEG here, PIL 0.45 ms (one core).
        return decode_jpeg(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, apply_exif_orientation=exif_orientation
        )
    except (RuntimeError, ValueError) as tv_err:  # a damaged JPEG: Pillow says why too, or reads it anyway
        return decode_pil(data, exif_orientation, tv_err)


def libjpeg_turbo_reads(data: bytes) -> bool:
    """The fast path: an 8-bit YCbCr or grayscale JPEG by its header, or a JPEG whose header is
    damaged (libjpeg-turbo then says how, beside Pillow). Refuses more than ``MAX_PIXELS``."""
    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return data[:2] == b"\xff\xd8"  # the JPEG start-of-image marker
    check_pixels(w, h)
    return colorspace in FAST_COLORSPACES


def check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        limit = f"more than the {MAX_PIXELS} decoded here (alexnet.data.decode.MAX_PIXELS)"
        raise UnreadableImage(f"{width}x{height} pixels, {limit}")


def decode_into(data: bytes, resize: int, out: torch.Tensor) -> None:
    """``decode`` into ``out``, a (3, resize, resize) uint8 view of HWC memory (a batch slot),
    without EXIF orientation (the loaders' rule).

    The prepared store's images (resize x resize JPEGs) are decoded by simplejpeg straight into
    the slot, which saves torchvision's decode and its copy; anything else goes through ``decode``."""
    # simplejpeg and torchvision both use libjpeg-turbo: 0.24 ms against 0.28 + 0.02 ms (copy) per 256x256 image, one core.
    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if h == w == resize and colorspace in FAST_COLORSPACES:
            simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out.permute(1, 2, 0).numpy())
            return
    except ValueError:  # a damaged JPEG: decode() says why, or reads it anyway
        pass
    out.copy_(decode(data, resize))


def decode_batch(encoded: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """A prepared store's JPEGs (all resize x resize, written by ``prepare`` through ``decode``)
    decoded on ``device`` into one uint8 batch: torchvision's batched nvJPEG decoder on a GPU,
    libjpeg-turbo on a CPU."""
    return torch.stack(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))


def decode_pil(data: bytes, exif_orientation: bool, tv_err: Exception | None = None) -> torch.Tensor:
    """Pillow for everything but plain JPEGs. Truncated files are refused (ImageFile.LOAD_TRUNCATED_IMAGES stays False)."""
    try:
        with warnings.catch_warnings():  # above MAX_PIXELS is refused below, in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            check_pixels(*im.size)
            rgb = pil_rgb8(ImageOps.exif_transpose(im) if exif_orientation else im)
    except UnreadableImage:
        raise
    except Exception as err:  # noqa: BLE001 - whatever PIL raises, the file is unreadable
        tv = f"torchvision: {str(tv_err).rsplit(', ', 1)[-1]}; " if tv_err else ""
        raise UnreadableImage(f"{tv}PIL: {err}") from err
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def pil_rgb8(im: Image.Image) -> np.ndarray:
    """The rule (module docstring) on an open Pillow image at its first frame: (H, W, 3) uint8."""
    if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit grayscale (PNG, TIFF): the high byte
        gray = (np.asarray(im).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode == "F":  # float (TIFF): 0..1
        gray = np.rint(np.nan_to_num(np.asarray(im, dtype=np.float64)).clip(0, 1) * 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if "A" in im.mode or "a" in im.mode or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return np.asarray(Image.alpha_composite(Image.new("RGBA", im.size, (*BACKGROUND, 255)), rgba).convert("RGB")).copy()
    return np.asarray(im.convert("RGB")).copy()


GRAY_BANDS = {"1", "L", "I", "F"}


def conversions(im: Image.Image) -> list[str]:
    """What the rule does to an open Pillow image besides decoding it, from its header (as
    ``pil_rgb8`` decides): '16-bit', 'float', 'palette', 'alpha', 'CMYK', 'grayscale',
    'animated' (the first frame is read), 'EXIF-rotated' (only predict turns it); [] for 8-bit RGB."""
    mode, bands = im.mode, set(im.getbands())
    found = []
    if mode.startswith("I;16") or mode == "I":
        found.append("16-bit")
    if mode == "F":
        found.append("float")
    if mode in ("P", "PA"):
        found.append("palette")
    if "A" in mode or "a" in mode or "transparency" in im.info:
        found.append("alpha")
    if mode == "CMYK":
        found.append("CMYK")
    if bands - {"A"} <= GRAY_BANDS:
        found.append("grayscale")
    if getattr(im, "n_frames", 1) > 1:
        found.append("animated")
    if im.getexif().get(ExifTags.Base.Orientation, 1) not in (0, 1):
        found.append("EXIF-rotated")
    return found


def describe(data: bytes) -> str:
    """What the rule converts, from the header only: 'JPEG RGB', 'JPEG CMYK', 'PNG I;16', 'PNG LA',
    'GIF P, first of 12 frames', ...; 'unknown' when Pillow does not read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                frames = getattr(im, "n_frames", 1)
                return f"{im.format} {im.mode}" + (f", first of {frames} frames" if frames > 1 else "")
    except Exception:  # noqa: BLE001 - the decoder reports the real error
        return "unknown"


def central_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Section 2: "rescaled the image such that the shorter side was of length 256, and then
    cropped out the central 256x256 patch"."""
    h, w = img.shape[-2:]
    if h == w == size:  # the prepared store's images: nothing to do
        return img
    if min(h, w) != size:
        img = TF.resize(img, size, antialias=True)
    return TF.center_crop(img, [size, size])
