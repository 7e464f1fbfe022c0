"""Local response normalisation (paper section 3.3).

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

The paper prints the formula with a bare ``alpha``. The code that produced its numbers
(cuda-convnet, whose layer parser does ``scale /= size``), Caffe and ``torch.nn.LocalResponseNorm``
all divide ``alpha`` by ``n``. Both readings are offered and named:

- ``convention="cuda_convnet"`` (default): ``alpha / n`` multiplies the sum, i.e. what the paper's
  own code computed with ``alpha=1e-4``.
- ``convention="printed"``: ``alpha`` multiplies the sum, exactly as printed.
"""

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

LRNConvention = Literal["cuda_convnet", "printed"]
LRN_CONVENTIONS = ("cuda_convnet", "printed")


class LocalResponseNorm(nn.Module):
    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        convention: LRNConvention = "cuda_convnet",
    ):
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size n must be a positive odd number, got {size}")
        if convention not in LRN_CONVENTIONS:
            raise ValueError(f"LRN convention must be one of {LRN_CONVENTIONS}, got {convention!r}")
        self.size, self.alpha, self.beta, self.k, self.convention = size, alpha, beta, k, convention
        # The sum's coefficient: alpha/n in cuda-convnet's reading, alpha as printed.
        self.scale = alpha / size if convention == "cuda_convnet" else alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return self.band_forward(x)
        # torch's kernel multiplies the windowed *mean* of squares by its alpha, so it takes
        # scale * n to produce scale * sum. Zero padding at the channel edges equals the
        # paper's clipped sum limits.
        return F.local_response_norm(x, self.size, alpha=self.scale * self.size, beta=self.beta, k=self.k)

    def band_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The window sum as one 1x1 convolution with a band matrix, the rest elementwise (one
        fused kernel under torch.compile). Measured on 2 CPU cores, channels-last conv1 output at
        batch 128: 1.1 s forward+backward against 3.5 s for F.local_response_norm (its 3-D
        average pool is slow in channels-last); in NCHW the latter is faster and is used."""
        c = x.shape[1]
        i = torch.arange(c, device=x.device)
        band = ((i[:, None] - i[None, :]).abs() <= self.size // 2).to(x.dtype)[:, :, None, None]
        window_sum = F.conv2d(x * x, band)
        return x * (self.k + self.scale * window_sum).pow(-self.beta)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, convention={self.convention}"
