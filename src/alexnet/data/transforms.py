"""The paper's preprocessing (section 2) and augmentation (section 4.1).

Work is split where it is cheapest:

- per image, in the loader workers: decode, rescale the shorter side to ``resize`` (256),
  take the central ``resize`` x ``resize`` patch, keep it ``uint8`` (4x fewer bytes to move);
- per batch, after the batch reaches its device (the GPU when there is one): mean
  subtraction, random crop + horizontal reflection, PCA colour noise, or the test crops.

Pixels stay on the paper's raw 0..255 scale: "subtracting the mean activity over the
training set from each pixel" is the only normalisation.
"""

from typing import Literal

import torch
from torch import nn
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as TF

MeanMode = Literal["per_pixel", "per_channel", "none"]

# Widely used ImageNet RGB eigen-decomposition for pixels in [0, 1] (fb.resnet.torch,
# torchvision references); columns of EIGVEC are the eigenvectors, rows are R, G, B.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def load_image(path: str, resize: int) -> torch.Tensor:
    """Decode any JPEG/PNG (grayscale and CMYK become RGB) to a central resize x resize uint8 patch."""
    img = decode_image(read_file(path), mode=ImageReadMode.RGB)
    return central_square(img, resize)


def central_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Section 2: "rescaled the image such that the shorter side was of length 256, and then
    cropped out the central 256x256 patch"."""
    h, w = img.shape[-2:]
    if min(h, w) != size:
        img = TF.resize(img, size, antialias=True)
    return TF.center_crop(img, [size, size])


def crop_offsets(size: int, crop: int) -> list[tuple[int, int]]:
    """Top-left corners of the paper's five test patches: four corners and the centre."""
    far, mid = size - crop, (size - crop) // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]


class BatchAugment(nn.Module):
    """Batched, device-side preprocessing of ``uint8`` batches of ``resize`` x ``resize`` images."""

    def __init__(
        self,
        mean: torch.Tensor,
        crop_size: int,
        flip: bool = True,
        pca_eigval: torch.Tensor | None = None,
        pca_eigvec: torch.Tensor | None = None,
        pca_std: float = 0.1,
    ):
        super().__init__()
        # mean: (3, R, R) for per_pixel, (3, 1, 1) for per_channel, zeros for none.
        self.register_buffer("mean", mean.float(), persistent=False)
        self.crop_size, self.flip, self.pca_std = crop_size, flip, pca_std
        self.pca = pca_eigval is not None
        if self.pca:
            self.register_buffer("eigval", pca_eigval.float(), persistent=False)
            self.register_buffer("eigvec", pca_eigvec.float(), persistent=False)

    def centred(self, x: torch.Tensor) -> torch.Tensor:
        # The per-pixel mean image is subtracted before cropping: the same as cropping it
        # together with the input, as Caffe does.
        return x.float() - self.mean

    def train_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop + reflection per image (section 4.1), then PCA colour noise."""
        x = self.centred(x)
        b, _, size, _ = x.shape
        c = self.crop_size
        top = torch.randint(0, size - c + 1, (b, 1), device=x.device)
        left = torch.randint(0, size - c + 1, (b, 1), device=x.device)
        ramp = torch.arange(c, device=x.device)
        cols = left + ramp
        if self.flip:
            flipped = torch.rand(b, 1, device=x.device) < 0.5
            cols = torch.where(flipped, left + c - 1 - ramp, cols)
        rows = top + ramp
        # One gather for all crops and reflections: out[b, :, i, j] = x[b, :, rows[b, i], cols[b, j]].
        idx_b = torch.arange(b, device=x.device)[:, None, None]
        x = x.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.pca:
            x = x + self.lighting_noise(b, x.device)[:, :, None, None]
        return x.contiguous()

    def lighting_noise(self, n: int, device: torch.device) -> torch.Tensor:
        """Section 4.1: add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T with a_i ~ N(0, 0.1), one draw per image."""
        alpha = torch.randn(n, 3, device=device) * self.pca_std
        return (alpha * self.eigval) @ self.eigvec.T

    def eval_batch(self, x: torch.Tensor, crops: int) -> torch.Tensor:
        """``crops=1``: the centre patch, (B, 3, c, c). ``crops=10``: the paper's ten patches, (B, 10, 3, c, c)."""
        x = self.centred(x)
        c = self.crop_size
        offsets = crop_offsets(x.shape[-1], c)
        if crops == 1:
            top, left = offsets[-1]
            return x[:, :, top : top + c, left : left + c].contiguous()
        patches = [x[:, :, t : t + c, l : l + c] for t, l in offsets]
        patches += [p.flip(-1) for p in patches]
        return torch.stack(patches, dim=1)
