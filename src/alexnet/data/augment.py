"""The paper's augmentation (section 4.1) and mean subtraction (section 2), on whole uint8 batches.

The loader only decodes (``decode``); everything else runs per batch, after the batch reaches
its device (the GPU when there is one): mean subtraction, random crop + horizontal
reflection, PCA colour noise, or the test crops. "subtracting the mean activity over the
training set from each pixel" is the only normalisation: pixels stay on the 0..255 scale.
"""

from typing import Literal

import torch
from torch import nn

from alexnet.data.batches import Ring

MeanMode = Literal["per_pixel", "per_channel", "none"]

# Widely used ImageNet RGB eigen-decomposition for pixels in [0, 1] (fb.resnet.torch,
# torchvision references); columns of EIGVEC are the eigenvectors, rows are R, G, B.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

# On the CPU a training batch stays valid until the next-but-one is made: the training step is
# done with batch k before batch k + 2 is augmented (the 77 MB float batch is reused, like the
# loader's, see ``batches``). The test crops are fresh memory, the caller's to keep.
TRAIN_DEPTH = 2


def crop_offsets(size: int, crop: int) -> list[tuple[int, int]]:
    """Top-left corners of the paper's five test patches: four corners and the centre."""
    far, mid = size - crop, (size - crop) // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]


# Section 4.1: the centre patch, or "the four corner patches and the center patch as well as
# their horizontal reflections"; the one place these counts are known.
CROP_COUNTS = (1, 10)


def check_crops(crops: int, key: str) -> None:
    if crops not in CROP_COUNTS:
        raise ValueError(f"{key} must be 1 (centre) or 10 (corners, centre and reflections), got {crops}")


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
        self.register_buffer("mean", mean.float().contiguous(), persistent=False)
        self.register_buffer("mean_flipped", mean.float().flip(-1).contiguous(), persistent=False)
        self.crop_size, self.flip, self.pca_std = crop_size, flip, pca_std
        self.outputs = Ring(TRAIN_DEPTH)
        self.pca = pca_eigval is not None
        if self.pca:
            self.register_buffer("eigval", pca_eigval.float(), persistent=False)
            self.register_buffer("eigvec", pca_eigvec.float(), persistent=False)

    def train_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop + reflection per image (section 4.1), then PCA colour noise."""
        b, _, size, _ = x.shape
        c = self.crop_size
        top = torch.randint(0, size - c + 1, (b,), device=x.device)
        left = torch.randint(0, size - c + 1, (b,), device=x.device)
        flipped = torch.rand(b, device=x.device) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool, device=x.device)
        noise = self.lighting_noise(b, x.device) if self.pca else None
        out = self.outputs.take((b, x.shape[1], c, c), torch.float32) if x.device.type == "cpu" else None
        return self.crops(x, top, left, flipped, noise, out)

    def crops(
        self,
        x: torch.Tensor,
        top: torch.Tensor,
        left: torch.Tensor,
        flipped: torch.Tensor,
        noise: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """float (B, 3, c, c): image b's c x c window at (top[b], left[b]), reflected where flipped[b],
        minus the mean image's same window (cropping the mean with the input, as Caffe does),
        plus noise[b] (B, 3) on each pixel's RGB. Written into ``out`` when given."""
        if x.device.type != "cpu":
            made = self.crops_gather(x, top, left, flipped, noise)
            return made if out is None else out.copy_(made)
        return self.crops_cpu(x, top, left, flipped, noise, out)

    def crops_gather(self, x, top, left, flipped, noise=None) -> torch.Tensor:
        c = self.crop_size
        ramp = torch.arange(c, device=x.device)
        rows = top[:, None] + ramp
        cols = torch.where(flipped[:, None], left[:, None] + c - 1 - ramp, left[:, None] + ramp)
        # One gather for all crops and reflections: out[b, :, i, j] = x[b, :, rows[b, i], cols[b, j]].
        idx_b = torch.arange(x.shape[0], device=x.device)[:, None, None]
        x = (x.float() - self.mean).permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]]
        if noise is not None:
            x += noise[:, None, None, :]
        return x.permute(0, 3, 1, 2).contiguous()

    def crops_cpu(self, x, top, left, flipped, noise=None, out=None) -> torch.Tensor:
        # The CPU path (no GPU, or the benchmark): per image, while its window is in the cache.
        # Measured on one core, batch 128, 256 -> 224, from the loader's channels-last uint8 batch:
        # the gather above 3.5 ms/image (as much as the whole torchvision reference); numpy's
        # cast-copy then subtraction, then the noise over the batch 0.16 ms; torch.sub of the
        # window and the mean's window into the output, then the noise on that image 0.13 ms.
        c, size = self.crop_size, x.shape[-1]
        if out is None:
            out = torch.empty((x.shape[0], x.shape[1], c, c))
        m, m_flipped = self.mean, self.mean_flipped
        full_mean = m.shape[-1] > 1
        noises = noise[:, :, None, None].unbind(0) if noise is not None else None
        # unbind: all the per-image views in one call (indexing x[i] each time: 0.003 ms/image more).
        for i, (image, target, t, col, f) in enumerate(
            zip(x.unbind(0), out.unbind(0), top.tolist(), left.tolist(), flipped.tolist())
        ):
            if f:  # reflect(crop(x) - crop(mean)) = reflect(crop(x)) - crop(reflect(mean)) at the mirrored column
                window = image[:, t : t + c, col : col + c].flip(-1)
                mean = m_flipped[:, t : t + c, size - c - col : size - col] if full_mean else m_flipped
            else:
                window = image[:, t : t + c, col : col + c]
                mean = m[:, t : t + c, col : col + c] if full_mean else m
            torch.sub(window, mean, out=target)
            if noises is not None:
                target += noises[i]
        return out

    def lighting_noise(self, n: int, device: torch.device) -> torch.Tensor:
        """Section 4.1: add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T with a_i ~ N(0, 0.1), one draw per image."""
        alpha = torch.randn(n, 3, device=device) * self.pca_std
        return (alpha * self.eigval) @ self.eigvec.T

    def eval_batch(self, x: torch.Tensor, crops: int) -> torch.Tensor:
        """``crops=1``: the centre patch, (B, 3, c, c). ``crops=10``: the paper's ten patches, (B, 10, 3, c, c):
        "the four corner patches and the center patch as well as their horizontal reflections"."""
        b, c = x.shape[0], self.crop_size
        offsets = crop_offsets(x.shape[-1], c)
        if crops == 1:
            offsets = offsets[-1:]
        views = [(t, left, flip) for flip in ((False, True) if crops == 10 else (False,)) for t, left in offsets]
        out = torch.empty((b, len(views), x.shape[1], c, c), device=x.device)
        full = lambda v: torch.full((b,), v, device=x.device)  # noqa: E731
        for k, (t, left, flip) in enumerate(views):  # each view straight into its place in the output
            self.crops(x, full(t), full(left), full(flip).bool(), out=out[:, k])
        return out[:, 0] if crops == 1 else out
