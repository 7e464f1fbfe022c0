"""LRN equals the paper's formula (section 3.3), in both readings of alpha."""

import pytest
import torch

from alexnet.models import LocalResponseNorm


def naive_lrn(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """b[i] = a[i] / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2) ** beta, a loop over kernels."""
    N = a.shape[1]
    b = torch.empty_like(a)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        s = (a[:, lo : hi + 1] ** 2).sum(1)
        b[:, i] = a[:, i] / (k + alpha * s) ** beta
    return b


@pytest.fixture
def activations():
    torch.manual_seed(0)
    return torch.rand(2, 12, 5, 5, dtype=torch.float64) * 60  # large enough for the denominator to matter


def test_printed_convention_is_the_printed_formula(activations):
    lrn = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, convention="printed")
    torch.testing.assert_close(lrn(activations), naive_lrn(activations, 5, 1e-4, 0.75, 2.0))


def test_cuda_convnet_convention_divides_alpha_by_n(activations):
    lrn = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, convention="cuda_convnet")
    torch.testing.assert_close(lrn(activations), naive_lrn(activations, 5, 1e-4 / 5, 0.75, 2.0))
    torch.testing.assert_close(lrn(activations), torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(activations))


def test_the_two_conventions_differ(activations):
    printed = LocalResponseNorm(convention="printed")(activations)
    convnet = LocalResponseNorm(convention="cuda_convnet")(activations)
    assert (printed - convnet).abs().max() > 1e-2


@pytest.mark.parametrize("n", [3, 7])
def test_other_window_sizes(activations, n):
    lrn = LocalResponseNorm(n, alpha=2e-4, beta=0.5, k=1.0, convention="printed")
    torch.testing.assert_close(lrn(activations), naive_lrn(activations, n, 2e-4, 0.5, 1.0))


def test_even_size_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNorm(4)


@pytest.mark.parametrize("convention", ["printed", "cuda_convnet"])
def test_channels_last_path_matches_the_formula(activations, convention):
    lrn = LocalResponseNorm(5, convention=convention)
    x = activations.contiguous(memory_format=torch.channels_last)
    alpha = 1e-4 if convention == "printed" else 1e-4 / 5
    torch.testing.assert_close(lrn(x), naive_lrn(activations, 5, alpha, 0.75, 2.0))
    x.requires_grad_(True)
    lrn(x).sum().backward()
    ref = activations.clone().requires_grad_(True)
    naive_lrn(ref, 5, alpha, 0.75, 2.0).sum().backward()
    torch.testing.assert_close(x.grad, ref.grad)
