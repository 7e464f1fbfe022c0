"""Image bytes to the paper's input: the central ``resize`` x ``resize`` patch (section 2), uint8 RGB.

"rescaled the image such that the shorter side was of length 256, and then cropped out the
central 256x256 patch". Pixels stay on the raw 0..255 scale; the batch ops (``augment``) do
the rest on the batch's device.

One rule for every caller (training, validation, the statistics pass, ``prepare``): whatever
does not decode, be it an empty file, a truncated JPEG or a text file named .JPEG, raises
``UnreadableImage``. The caller knows which file it read: it names the file and decides
(training skips and counts, validation and test stop, ``prepare`` lists it).

torchvision.io's decoders (deprecated in torchvision 0.29 in favour of TorchCodec) are used in
this module only, and pyproject.toml bounds torchvision below 0.30: TorchCodec is a video
library whose image decoding would add a dependency for no measured gain, and simplejpeg
already decodes the store's JPEGs.
"""

import io

import numpy as np
import simplejpeg
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms.v2 import functional as TF


class UnreadableImage(ValueError):
    """An image file that no decoder reads (truncated, empty, not an image)."""


def decode(data: bytes, resize: int) -> torch.Tensor:
    """Any JPEG/PNG (grayscale, CMYK and palette images become RGB) to a central resize x resize uint8 patch."""
    if not data:  # every decoder fails on it, some with messages about buffer lengths
        raise UnreadableImage("empty file (0 bytes)")
    try:
        # torchvision's libjpeg-turbo decoder: 0.28 ms for a 256x256 JPEG here, PIL 0.45 ms (one core).
        img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as tv_err:
        img = decode_pil(data, tv_err)
    return central_square(img, resize)


def decode_into(data: bytes, resize: int, out: torch.Tensor) -> None:
    """``decode`` into ``out``, a (3, resize, resize) uint8 view of HWC memory (a batch slot).

    The prepared store's images (resize x resize JPEGs) are decoded by simplejpeg straight into
    the slot, which saves torchvision's decode and its copy; anything else goes through ``decode``."""
    # simplejpeg and torchvision both use libjpeg-turbo: 0.24 ms against 0.28 + 0.02 ms (copy) per 256x256 image, one core.
    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if h == w == resize and colorspace in ("YCbCr", "Gray"):
            simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out.permute(1, 2, 0).numpy())
            return
    except ValueError:  # not a JPEG, or a damaged one: decode() says which, or reads it anyway
        pass
    out.copy_(decode(data, resize))


def decode_batch(encoded: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """A prepared store's JPEGs (all resize x resize) decoded on ``device`` into one uint8 batch:
    torchvision's batched nvJPEG decoder on a GPU, libjpeg-turbo on a CPU."""
    return torch.stack(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))


def decode_pil(data: bytes, tv_err: Exception) -> torch.Tensor:
    """The fallback for what torchvision does not decode (BMP, TIFF, ... named .JPEG). PIL
    refuses truncated files too (ImageFile.LOAD_TRUNCATED_IMAGES stays False)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as err:  # noqa: BLE001 - whatever PIL raises, the file is unreadable
        raise UnreadableImage(f"torchvision: {str(tv_err).rsplit(', ', 1)[-1]}; PIL: {err}") from err
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()


def central_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Section 2: "rescaled the image such that the shorter side was of length 256, and then
    cropped out the central 256x256 patch"."""
    h, w = img.shape[-2:]
    if h == w == size:  # the prepared store's images: nothing to do
        return img
    if min(h, w) != size:
        img = TF.resize(img, size, antialias=True)
    return TF.center_crop(img, [size, size])
