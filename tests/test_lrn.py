"""LRN equals the paper's formula (section 3.3), in both readings of alpha."""

import os
import subprocess
import sys

import pytest
import torch
from builders import lrn, lrn_args

# Section 3.3's constants, as conf/model/alexnet.yaml holds them.
P = lrn_args()
N, ALPHA, BETA, K = P["size"], P["alpha"], P["beta"], P["k"]


def naive_lrn(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """b[i] = a[i] / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2) ** beta, a loop over kernels."""
    N = a.shape[1]
    b = torch.empty_like(a)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        s = (a[:, lo : hi + 1] ** 2).sum(1)
        b[:, i] = a[:, i] / (k + alpha * s) ** beta
    return b


# The sum's coefficient in each reading of alpha: as printed, and cuda-convnet's alpha / n.
SCALE = {"printed": ALPHA, "cuda_convnet": ALPHA / N}


@pytest.fixture
def activations():
    torch.manual_seed(0)
    return torch.rand(2, 12, 5, 5, dtype=torch.float64) * 60  # large enough for the denominator to matter


def test_printed_convention_is_the_printed_formula(activations):
    norm = lrn(convention="printed")
    torch.testing.assert_close(norm(activations), naive_lrn(activations, N, ALPHA, BETA, K))


def test_cuda_convnet_convention_divides_alpha_by_n(activations):
    norm = lrn(convention="cuda_convnet")
    torch.testing.assert_close(norm(activations), naive_lrn(activations, N, ALPHA / N, BETA, K))
    torch.testing.assert_close(norm(activations), torch.nn.LocalResponseNorm(N, alpha=ALPHA, beta=BETA, k=K)(activations))


def test_the_two_conventions_differ(activations):
    printed = lrn(convention="printed")(activations)
    convnet = lrn(convention="cuda_convnet")(activations)
    assert (printed - convnet).abs().max() > 1e-2


@pytest.mark.parametrize("n", [3, 7])
def test_other_window_sizes(activations, n):
    norm = lrn(size=n, alpha=2e-4, beta=0.5, k=1.0, convention="printed")
    torch.testing.assert_close(norm(activations), naive_lrn(activations, n, 2e-4, 0.5, 1.0))


def test_even_size_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        lrn(size=4)


@pytest.mark.parametrize("convention", ["printed", "cuda_convnet"])
def test_channels_last_path_matches_the_formula(activations, convention):
    norm = lrn(convention=convention)
    x = activations.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(norm(x), naive_lrn(activations, N, SCALE[convention], BETA, K))
    x.requires_grad_(True)
    norm(x).sum().backward()
    ref = activations.clone().requires_grad_(True)
    naive_lrn(ref, N, SCALE[convention], BETA, K).sum().backward()
    torch.testing.assert_close(x.grad, ref.grad)


# The hand-written forward and backward (LRNFunction) against autograd through the naive loop.

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def outputs_and_grads(fn, a: torch.Tensor, g: torch.Tensor):
    a = a.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
    out = fn(a)
    out.backward(g)
    return out, a.grad


# Both CPU kernels: the compiled loop (the default) and the eager band product.
KERNELS = {"compiled": True, "eager": False}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("convention", SCALE)
def test_outputs_and_gradients_match_the_formula(activations, convention, fmt, kernel):
    a = activations.contiguous(memory_format=FORMATS[fmt])
    g = torch.randn_like(a)
    out, grad = outputs_and_grads(lrn(convention=convention, compiled=KERNELS[kernel]), a, g)
    ref_out, ref_grad = outputs_and_grads(lambda x: naive_lrn(x, N, SCALE[convention], BETA, K), activations, g)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)
    assert out.is_contiguous(memory_format=FORMATS[fmt]) and grad.is_contiguous(memory_format=FORMATS[fmt])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("convention", SCALE)
def test_gradcheck(convention, fmt, kernel):
    torch.manual_seed(1)
    # alpha and inputs large enough that the normalisation term dominates the Jacobian.
    a = (torch.rand(2, 7, 3, 3, dtype=torch.float64) * 10).contiguous(memory_format=FORMATS[fmt]).requires_grad_(True)
    norm = lrn(alpha=1.0, k=1.0, convention=convention, compiled=KERNELS[kernel])
    assert torch.autograd.gradcheck(norm, (a,))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n, channels", [(3, 12), (7, 12), (5, 3), (7, 1), (5, 70)])
def test_window_sizes_and_fewer_channels_than_n(fmt, n, channels, kernel):
    """C < n clips the window on both sides."""
    torch.manual_seed(2)
    a = (torch.rand(2, channels, 4, 4, dtype=torch.float64) * 60).contiguous(memory_format=FORMATS[fmt])
    g = torch.randn_like(a)
    norm = lrn(size=n, alpha=2e-4, beta=0.5, k=1.0, convention="printed", compiled=KERNELS[kernel])
    out, grad = outputs_and_grads(norm, a, g)
    ref_out, ref_grad = outputs_and_grads(lambda x: naive_lrn(x, n, 2e-4, 0.5, 1.0), a, g)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)


def test_second_backward_with_retained_graph_gives_the_same_gradient(activations):
    """Without retain_graph the backward reuses the saved buffers; with it, they must survive."""
    a = activations.clone().requires_grad_(True)
    out = lrn()(a)
    g = torch.randn_like(out)
    (first,) = torch.autograd.grad(out, a, g, retain_graph=True)
    (second,) = torch.autograd.grad(out, a, g)
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("shape", [(2, 12), (2, 12, 25), (2, 12, 5, 5)])
def test_no_grad_and_other_ranks(activations, shape):
    """Dim 1 is the channel axis at any rank, as in torch.nn.LocalResponseNorm."""
    norm = lrn(convention="printed")
    a = activations[..., :1, :1].reshape(2, 12) if len(shape) == 2 else activations.reshape(shape)
    with torch.no_grad():
        torch.testing.assert_close(norm(a), naive_lrn(a, N, ALPHA, BETA, K))
    g = torch.randn_like(a)
    torch.testing.assert_close(outputs_and_grads(norm, a, g), outputs_and_grads(lambda x: naive_lrn(x, N, ALPHA, BETA, K), a, g))


@pytest.mark.parametrize("kernel", KERNELS)
def test_float32_matches_torch_at_conv1_scale(kernel):
    """Realistic size and dtype: the conv1 output shape at a small batch, against torch's own LRN."""
    torch.manual_seed(3)
    a = (torch.rand(2, 96, 27, 27) * 30).requires_grad_(True)
    g = torch.randn(2, 96, 27, 27)
    out, grad = outputs_and_grads(lrn(convention="cuda_convnet", compiled=KERNELS[kernel]), a, g)
    ref_out, ref_grad = outputs_and_grads(torch.nn.LocalResponseNorm(N, alpha=ALPHA, beta=BETA, k=K), a, g)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)


def compiled_equals_eager(backend: str):
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), lrn(), torch.nn.MaxPool2d(2)).double()
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    out = torch.compile(net, backend=backend, fullgraph=True)(x)  # fullgraph: LRN must not break the graph
    out.square().sum().backward()
    compiled = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    ref = net(x)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(compiled, [p.grad for p in net.parameters()])


def test_traces_under_torch_compile_in_one_graph():
    """Dynamo and AOTAutograd trace the forward and the hand-written backward, no C++ compiler needed."""
    torch._dynamo.reset()
    compiled_equals_eager("aot_eager")


@pytest.mark.slow
def test_inductor_compiled_forward_and_backward_equal_eager():
    """With inductor (C++ code generation, tens of seconds on a small CPU)."""
    torch._dynamo.reset()
    compiled_equals_eager("inductor")


def test_a_failed_kernel_build_names_the_switch(tmp_path):
    """No working C++ compiler (CXX names none) and an empty kernel cache: the error names the key."""
    args = lrn_args(compiled=True)
    code = f"import torch; from alexnet.models import LocalResponseNorm; LocalResponseNorm(**{args!r})(torch.rand(2, 8, 3, 3))"
    env = {**os.environ, "CXX": str(tmp_path / "no-such-c++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "model.lrn_compiled=false" in proc.stderr, proc.stderr[-3000:]
