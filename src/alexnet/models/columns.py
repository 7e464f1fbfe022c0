"""conv1 computed per GPU column, as figure 2 splits its 96 kernels (48 on each GPU).

Same parameters (``weight``, ``bias``: checkpoints load unchanged) and the same result as one
``nn.Conv2d``; on a CPU the kernels run as one convolution per column and are concatenated, on
a GPU as one convolution.
"""

import torch
from torch import nn

# Why, measured rather than the paper's: oneDNN's weight gradient of the 96-kernel conv1 at batch
# 128 took 1.6-2.0 s with 2 threads against 0.35 s for the two 48-kernel halves together
# (forward 0.28 s against 0.36 s; the same total on one thread).


class ColumnConv2d(nn.Conv2d):
    def __init__(self, *args, columns: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.out_channels % columns:
            raise ValueError(f"columns={columns} needs groups=1 and out_channels divisible by it")
        self.columns = columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.columns == 1 or x.device.type != "cpu":
            return super().forward(x)
        weights = self.weight.chunk(self.columns)
        biases = self.bias.chunk(self.columns) if self.bias is not None else [None] * self.columns
        return torch.cat([self._conv_forward(x, w, b) for w, b in zip(weights, biases)], 1)
