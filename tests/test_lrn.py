"""LRN equals the paper's formula (section 3.3), in both readings of alpha, over all of a layer's
maps or within each GPU column's (model.lrn_scope)."""

import os
import subprocess
import sys

import pytest
import torch
import torch._dynamo
from builders import PAPER, lrn, lrn_args, model_args, small_model
from conftest import OPTIM, compose_train

from alexnet.models import AlexNet, saved_model_config
from alexnet.training.module import LitAlexNet, load_module

# Section 3.3's constants, as conf/model/alexnet.yaml holds them.
P = lrn_args()
N, ALPHA, BETA, K = P["size"], P["alpha"], P["beta"], P["k"]


def naive_lrn(a: torch.Tensor, n: int, alpha: float, beta: float, k: float, groups: int = 1) -> torch.Tensor:
    """b[i] = a[i] / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2) ** beta, a loop over
    kernels; with groups, N is each group's map count and the sum never leaves the group."""
    N = a.shape[1] // groups
    b = torch.empty_like(a)
    for first in range(0, a.shape[1], N):
        for i in range(N):
            lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
            s = (a[:, first + lo : first + hi + 1] ** 2).sum(1)
            b[:, first + i] = a[:, first + i] / (k + alpha * s) ** beta
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


# Both CPU kernels: the compiled loop (the default) and the eager band product. Each variant of the
# compiled loop is a C++ build (seconds each on an empty kernel cache), and past recompile_limit (8)
# variants of one function dynamo would run the rest uncompiled, silently (here: an error, below).
# So the loop is checked on what a run builds (float, n = 5, either memory format and scope), and
# window sizes and gradcheck run the same fused code as torch.compile traces it ("traced": dynamo's
# eager backend runs the traced ops, no C++ build) beside the band product.
KERNELS = {"compiled": True, "eager": False}
TRACED_OR_EAGER = ("traced", "eager")


def kernel_lrn(kernel: str, **args):
    if kernel == "traced":
        torch._dynamo.reset()  # each traced module from scratch: no recompile limit reached across tests
        return torch.compile(lrn(**args, compiled=False), backend="eager", fullgraph=True)
    return lrn(**args, compiled=KERNELS[kernel])


@pytest.fixture(autouse=True)
def compiled_means_compiled():
    """A variant past dynamo's recompile limit fails here instead of running uncompiled."""
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("convention", SCALE)
def test_outputs_and_gradients_match_the_formula(activations, convention, fmt, kernel, groups):
    a = activations.contiguous(memory_format=FORMATS[fmt])
    g = torch.randn_like(a)
    out, grad = outputs_and_grads(lrn(convention=convention, compiled=KERNELS[kernel], groups=groups), a, g)
    ref_out, ref_grad = outputs_and_grads(lambda x: naive_lrn(x, N, SCALE[convention], BETA, K, groups), activations, g)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)
    assert out.is_contiguous(memory_format=FORMATS[fmt]) and grad.is_contiguous(memory_format=FORMATS[fmt])


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("kernel", TRACED_OR_EAGER)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("convention", SCALE)
def test_gradcheck(convention, fmt, kernel, groups):
    torch.manual_seed(1)
    # alpha and inputs large enough that the normalisation term dominates the Jacobian.
    a = (torch.rand(2, 8, 3, 3, dtype=torch.float64) * 10).contiguous(memory_format=FORMATS[fmt]).requires_grad_(True)
    norm = kernel_lrn(kernel, alpha=1.0, k=1.0, convention=convention, groups=groups)
    assert torch.autograd.gradcheck(norm, (a,))


@pytest.mark.parametrize("kernel", TRACED_OR_EAGER)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n, channels", [(3, 12), (7, 12), (5, 3), (7, 1), (5, 70)])
def test_window_sizes_and_fewer_channels_than_n(fmt, n, channels, kernel):
    """C < n clips the window on both sides."""
    torch.manual_seed(2)
    a = (torch.rand(2, channels, 4, 4, dtype=torch.float64) * 60).contiguous(memory_format=FORMATS[fmt])
    g = torch.randn_like(a)
    norm = kernel_lrn(kernel, size=n, alpha=2e-4, beta=0.5, k=1.0, convention="printed")
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
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), lrn(), lrn(groups=2), torch.nn.MaxPool2d(2)).double()
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    out = torch.compile(net, backend=backend, fullgraph=True)(x)  # fullgraph: LRN must not break the graph
    out.square().sum().backward()
    compiled = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    ref = net(x)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(compiled, [p.grad for p in net.parameters()])
    torch.testing.assert_close(ref, net[4](naive_lrn(naive_lrn(net[1](net[0](x)), 5, 2e-5, 0.75, 2.0), 5, 2e-5, 0.75, 2.0, 2)))


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


# model.lrn_scope: the window within each GPU's kernel maps (column) or across all of them (all).


@pytest.mark.parametrize("kernel", KERNELS)
def test_column_scope_changes_only_the_maps_beside_the_gpu_boundary(activations, kernel):
    """12 maps in two columns of 6: with n = 5 only maps 4-7 reach across the boundary."""
    within = lrn(compiled=KERNELS[kernel], groups=2)(activations)
    across = lrn(compiled=KERNELS[kernel])(activations)
    differs = ((within - across).abs().amax(dim=(0, 2, 3)) > 1e-9).nonzero().flatten().tolist()
    assert differs == [4, 5, 6, 7]


def test_channels_not_divisible_by_the_groups_are_rejected():
    with pytest.raises(ValueError, match="groups=2 needs a channel count divisible by it, got 7"):
        lrn(groups=2, compiled=False)(torch.rand(1, 7, 2, 2))


def lrn_groups(net: AlexNet) -> list[int]:
    return [net.features.norm1.groups, net.features.norm2.groups]


@pytest.mark.parametrize("scope, columns, groups", [("column", 2, 2), ("all", 2, 1), ("column", 1, 1), ("all", 1, 1)])
def test_the_scope_sets_each_normalisation_layers_groups(scope, columns, groups):
    """The one-GPU net has one column: its window spans all its maps under either scope."""
    assert lrn_groups(AlexNet(**model_args(*PAPER, columns=columns, lrn_scope=scope, lrn_compiled=False))) == [groups, groups]


def test_unknown_scope_is_rejected():
    with pytest.raises(ValueError, match="lrn_scope must be one of"):
        AlexNet(**model_args(*PAPER, lrn_scope="gpu"))


def test_the_two_gpu_nets_default_is_the_authors_column_scope():
    """cuda-convnet2's [rnorm1a] inputs=conv1a channels=48 (docs/fidelity.md): pinned, because no
    parameter count or shape would notice a change."""
    for overrides in ("experiment=alexnet_paper", "experiment=demo", "experiment=ablation_1gpu"):
        assert compose_train(overrides).model.lrn_scope == "column", overrides


def test_a_checkpoint_saved_before_the_scope_existed_loads_as_all(tmp_path):
    """LRN has no parameters: the old weights load, and the net runs the scope they were trained with."""
    small = {k: v for k, v in small_model(lrn_compiled=False).items() if k != "lrn_scope"}  # saved before the key
    net = LitAlexNet({**small, "lrn_scope": "all"}, OPTIM)
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": {"model": small, "optim": OPTIM}}, path)
    loaded = load_module(str(path))
    assert lrn_groups(loaded.net) == [1, 1]
    x = torch.rand(2, 3, 67, 67)
    torch.testing.assert_close(loaded.eval()(x), net.eval()(x))
    assert saved_model_config({"lrn_scope": "column"})["lrn_scope"] == "column"  # a saved key is kept


def test_resuming_an_old_checkpoint_under_the_column_scope_is_refused(tmp_path):
    """An old checkpoint ran `all`: continuing it as `column` would change the net mid-run."""
    from alexnet.checkpointing import checks
    from alexnet.errors import ConfigError

    small = {k: v for k, v in small_model(lrn_compiled=False).items() if k != "lrn_scope"}  # saved before the key
    old = {"state_dict": LitAlexNet({**small, "lrn_scope": "all"}, OPTIM).state_dict(), "hyper_parameters": {"model": small}}
    here = {**small, "lrn_scope": "column"}
    with pytest.raises(ConfigError, match="model.lrn_scope='all' there, 'column' here"):
        checks.check_matches("old.ckpt", old, LitAlexNet(here, OPTIM), here)


def test_an_old_run_config_reads_as_all(tmp_path):
    """eval.py and predict.py read a run folder's .hydra/config.yaml through the same completion."""
    from alexnet.evaluation.evaluate import Member

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("model:\n  columns: 2\nseed: 0\n")
    assert Member(tmp_path / "checkpoints" / "last.ckpt", tmp_path).config().model.lrn_scope == "all"
