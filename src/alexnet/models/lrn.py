"""Local response normalisation (paper section 3.3).

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

The paper prints the formula with a bare ``alpha``. The code that produced its numbers
(cuda-convnet, whose layer parser does ``scale /= size``), Caffe and ``torch.nn.LocalResponseNorm``
all divide ``alpha`` by ``n``. Both readings are offered and named (the constants n, alpha, beta,
k and the convention are conf/model/alexnet.yaml's ``lrn_*`` keys, their one home):

- ``convention="cuda_convnet"``: ``alpha / n`` multiplies the sum, i.e. what the paper's
  own code computed with ``alpha=1e-4``.
- ``convention="printed"``: ``alpha`` multiplies the sum, exactly as printed.

Forward and backward are written out (``LRNFunction``) rather than left to autograd: with
``d = k + scale * window_sum(a^2)`` and ``b = a * d^-beta``,

    dL/da[j] = g[j] * d[j]^-beta - 2 * beta * scale * a[j] * sum_{i in win(j)} g[i] * b[i] / d[i]

so the backward is one more window sum and a few elementwise products of saved tensors.

``groups``: the window stays inside each of that many equal blocks of channels, as it stays inside
each GPU's kernel maps in the authors' two-GPU net (cuda-convnet2's ``[rnorm1a] inputs=conv1a
channels=48``; docs/fidelity.md, "LRN across the GPU columns"). The band matrix becomes
block-diagonal (the same product, the same cost); the compiled loop runs each block as a batch
item of its own (a free view of an NCHW tensor); channels-last inputs and a whole-model
torch.compile mask the window at the block edges instead.
"""

import functools
import logging
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

LRNConvention = Literal["cuda_convnet", "printed"]
LRN_CONVENTIONS = ("cuda_convnet", "printed")

# The window sum is one matrix product with a C x C band matrix for the whole batch. Products
# with blocks of the band (only the channels a window reaches) were up to 2x faster on one core
# but took seconds instead of 60 ms with 2 threads when other jobs shared the cores; running the
# batch in chunks was slower there too (measured at C=96 and C=256, batch 128). The elementwise
# steps write into buffers that are kept anyway: a fresh full-size tensor costs page faults worth
# about one elementwise pass (measured). n shifted-slice additions were slower than the product.


def band(channels: int, size: int, coefficient: float, like: torch.Tensor, groups: int) -> torch.Tensor:
    i = torch.arange(channels, device=like.device)
    block = i // (channels // groups)
    near = (i[:, None] - i[None, :]).abs() <= size // 2
    return (near & (block[:, None] == block[None, :])).to(like.dtype) * coefficient


def window_sum_into(x: torch.Tensor, weights: torch.Tensor, out: torch.Tensor, channels_last: bool) -> None:
    """out = weights @ x over the channel axis (weights is symmetric): (N, C, L) in NCHW, (N*H*W, C) channels-last."""
    if channels_last:
        torch.mm(x, weights, out=out)
    else:
        torch.matmul(weights, x, out=out)


def neg_pow_into(d: torch.Tensor, beta: float, out: torch.Tensor) -> None:
    if beta == 0.75:  # the paper's beta: d^-3/4 = 1/sqrt(d * sqrt(d)), 2.5x faster than pow (measured)
        torch.sqrt(d, out=out).mul_(d).rsqrt_()
    else:
        torch.pow(d, -beta, out=out)


def neg_pow(d: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.rsqrt(d * torch.sqrt(d)) if beta == 0.75 else d.pow(-beta)


def rows_of(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The matrix the window sum runs over: (N, C, L), or (N*H*W, C) for channels-last."""
    if channels_last:
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    return x.view(x.shape[0], x.shape[1], -1)


def shifted_window_sum(x: torch.Tensor, size: int, groups: int) -> torch.Tensor:
    """Sum over the channel window as n shifted slices of the zero-padded input: compiled, this
    fuses with the elementwise work around it into one loop. With groups, a term whose source map
    lies in another group is masked out (kept 4-D: a 5-D view of the groups compiled to a loop
    about twice as slow, measured). Sources clamped at the edges read the zero padding anyway."""
    h, c = size // 2, x.shape[1]
    padded = F.pad(x, (0, 0) * (x.dim() - 2) + (h, h))
    if groups == 1:
        return sum(padded[:, j : j + c] for j in range(size))
    block = torch.arange(c, device=x.device) // (c // groups)
    trailing = (1,) * (x.dim() - 2)
    terms = [x]  # j = h: every map is in its own group
    for j in (*range(h), *range(h + 1, size)):
        source = torch.arange(j - h, j - h + c, device=x.device).clamp(0, c - 1) // (c // groups)
        terms.append(torch.where((source == block).view(c, *trailing), padded[:, j : j + c], 0.0))
    return sum(terms)


def fused_forward(a: torch.Tensor, size: int, scale: float, beta: float, k: float, groups: int):
    """b, and what the backward needs (d^-beta, b / d), written for a compiler to fuse."""
    d = k + scale * shifted_window_sum(a * a, size, groups)
    r = neg_pow(d, beta)
    b = a * r
    return b, r, b / d


def fused_backward(
    g: torch.Tensor, a: torch.Tensor, r: torch.Tensor, q: torch.Tensor, size: int, coefficient: float, groups: int
):
    return g * r + coefficient * a * shifted_window_sum(g * q, size, groups)


@functools.cache
def compiled(kernel):
    """KERNEL through torch.compile. On a CPU, Inductor turns each of the two into one C++ loop over
    the tensor: a few passes over memory instead of eight elementwise ops and a matrix product.
    dynamic=True: one kernel serves every batch and image size. Built on first use (seconds; cached
    on disk by Inductor), and wrapped on first use too: torch.compile imports torch's compiler,
    about 1 s of every process's start, which the eager LRN does not need."""
    return torch.compile(kernel, dynamic=True)


@functools.cache
def quiet_kernel_build() -> None:
    """The C++ build logs "No CUDA runtime is found" on every CPU-only machine: expected here, not
    news. Quieted at the first compiled call, not on import (importing changes no logging)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def run_compiled(kernel, *args):
    quiet_kernel_build()
    try:
        return kernel(*args)
    except Exception as e:  # whatever failed in the build or the run, the message names the switch
        raise RuntimeError(
            "LocalResponseNorm(compiled=True) (config key model.lrn_compiled): torch.compile failed on "
            f"the CPU kernel ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); it needs a working "
            "C++ compiler. Set model.lrn_compiled=false to use the eager LRN."
        ) from e


def as_blocks(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, C, ...) as (N * groups, C / groups, ...): each group a batch item of its own, a free view
    of a contiguous tensor, so the compiled loop runs as fast per map as with one group."""
    return t.view(t.shape[0] * groups, t.shape[1] // groups, *t.shape[2:])


def compiled_forward_in_blocks(a: torch.Tensor, size: int, scale: float, beta: float, k: float, groups: int):
    if groups == 1 or not a.is_contiguous():  # channels-last: the masked window (fused_forward)
        return run_compiled(compiled(fused_forward), a, size, scale, beta, k, groups)
    return tuple(t.view(a.shape) for t in run_compiled(compiled(fused_forward), as_blocks(a, groups), size, scale, beta, k, 1))


def compiled_backward_in_blocks(g, a, r, q, size: int, coefficient: float, groups: int) -> torch.Tensor:
    if groups == 1 or not a.is_contiguous():
        return run_compiled(compiled(fused_backward), g, a, r, q, size, coefficient, groups)
    g, a, r, q = (as_blocks(t.contiguous(), groups) for t in (g, a, r, q))
    return run_compiled(compiled(fused_backward), g, a, r, q, size, coefficient, 1).view(a.shape[0] // groups, -1, *a.shape[2:])


def graph_kept() -> bool:
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return keep_graph is None or keep_graph()


class LRNFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, a: torch.Tensor, size: int, scale: float, beta: float, k: float, compiled: bool, groups: int
    ) -> torch.Tensor:
        if a.shape[1] % groups:
            raise ValueError(f"LRN groups={groups} needs a channel count divisible by it, got {a.shape[1]} channels")
        ctx.size, ctx.scale, ctx.beta, ctx.groups = size, scale, beta, groups
        if torch.compiler.is_compiling() or a.dim() < 3:
            ctx.path = "fused"  # traced and fused with the rest of a compiled model
        elif compiled and a.device.type == "cpu":
            ctx.path = "compiled"
        else:
            ctx.path = "band"
        if ctx.path == "fused":
            b, r, q = fused_forward(a, size, scale, beta, k, groups)
        elif ctx.path == "compiled":
            b, r, q = compiled_forward_in_blocks(a, size, scale, beta, k, groups)
        if ctx.path != "band":
            ctx.save_for_backward(a, r, q)
            return b
        ctx.channels_last = a.dim() == 4 and a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous()
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        a = a.contiguous(memory_format=fmt)
        b, d, r = (torch.empty_like(a, memory_format=fmt) for _ in range(3))
        A, B, D = (rows_of(t, ctx.channels_last) for t in (a, b, d))
        with torch.autocast(a.device.type, enabled=False):  # the window sum in the input's dtype
            window_sum_into(
                torch.mul(A, A, out=B), band(a.shape[1], size, scale, a, groups), D, ctx.channels_last
            )  # a^2 in b's memory
        d.add_(k)
        neg_pow_into(d, beta, r)  # d^-beta
        torch.mul(a, r, out=b)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(a, r, torch.div(b, d, out=d))  # b / d in d's memory
        return b

    @staticmethod
    @torch.autograd.function.once_differentiable  # the backward writes in place: no double backward
    def backward(ctx, g: torch.Tensor):
        a, r, q = ctx.saved_tensors
        coefficient = -2 * ctx.beta * ctx.scale
        rest = (None,) * 6  # size, scale, beta, k, compiled, groups
        if ctx.path == "compiled":
            return compiled_backward_in_blocks(g, a, r, q, ctx.size, coefficient, ctx.groups), *rest
        if ctx.path == "fused":
            return fused_backward(g, a, r, q, ctx.size, coefficient, ctx.groups), *rest
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        g = g.contiguous(memory_format=fmt)
        # Unless the graph is kept for another backward, r and b/d are dead once read: the products
        # go into their memory, two page-faulting allocations fewer (AOTAutograd frees early too).
        kept = graph_kept()
        t = g * q if kept else q.mul_(g)
        w = torch.empty_like(t)
        with torch.autocast(a.device.type, enabled=False):
            window_sum_into(
                rows_of(t, ctx.channels_last),
                band(a.shape[1], ctx.size, coefficient, a, ctx.groups),
                rows_of(w, ctx.channels_last),
                ctx.channels_last,
            )
        grad = g * r if kept else r.mul_(g)
        return grad.addcmul_(a, w), *rest


class LocalResponseNorm(nn.Module):
    def __init__(
        self,
        *,
        size: int,
        alpha: float,
        beta: float,
        k: float,
        convention: LRNConvention,
        compiled: bool,
        groups: int = 1,
    ):
        super().__init__()
        if groups < 1:
            raise ValueError(f"LRN groups must be a positive number of channel blocks, got {groups}")
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size n must be a positive odd number, got {size}")
        if convention not in LRN_CONVENTIONS:
            raise ValueError(f"LRN convention must be one of {LRN_CONVENTIONS}, got {convention!r}")
        self.size, self.alpha, self.beta, self.k, self.convention = size, alpha, beta, k, convention
        self.compiled = compiled  # the compiled CPU kernel; False: eager ops only (no C++ compiler needed)
        self.groups = groups  # 1: the window spans all channels; 2: it stays inside each half (each GPU's maps)
        # The sum's coefficient: alpha/n in cuda-convnet's reading, alpha as printed.
        self.scale = alpha / size if convention == "cuda_convnet" else alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Zero padding at the channel edges (the band's clipped rows) equals the paper's clipped
        # sum limits, within each group as at the channel edges. The output keeps the input's memory format.
        return LRNFunction.apply(x, self.size, self.scale, self.beta, self.k, self.compiled, self.groups)

    def extra_repr(self) -> str:
        formula = f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, convention={self.convention}"
        return f"{formula}, groups={self.groups}, compiled={self.compiled}"
