"""The fast path (channels-last, torch.compile, bf16) computes what the plain path computes."""

import copy

import pytest
import torch
from torch.nn import functional as F

from alexnet import speed
from alexnet.module import LitAlexNet

MODEL = dict(num_classes=10, crop_size=67, dropout=0.0)  # no dropout: both paths see the same network


def loss_and_grads(module: LitAlexNet, x: torch.Tensor, y: torch.Tensor, autocast: bool = False):
    module.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = F.cross_entropy(module(x).float(), y)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in module.named_parameters()}


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(8, 3, 67, 67) * 60, torch.randint(0, 10, (8,))


def test_channels_last_and_compile_match_the_plain_path(batch):
    x, y = batch
    plain = LitAlexNet(MODEL)
    fast = copy.deepcopy(plain)
    speed.apply(fast, channels_last=True, compile=True)
    assert fast.net.features.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    loss0, grads0 = loss_and_grads(plain, x, y)
    loss1, grads1 = loss_and_grads(fast, x, y)
    torch.testing.assert_close(loss1, loss0, rtol=1e-5, atol=1e-5)
    for name, g in grads0.items():
        torch.testing.assert_close(grads1[name], g, rtol=1e-3, atol=1e-5, msg=name)
    # Compilation keeps the parameter names, so checkpoints load in either path.
    assert set(fast.state_dict()) == set(plain.state_dict())


def test_bf16_autocast_stays_within_bf16_tolerance(batch):
    x, y = batch
    module = LitAlexNet(MODEL)
    loss32, grads32 = loss_and_grads(module, x, y)
    loss16, grads16 = loss_and_grads(module, x, y, autocast=True)
    torch.testing.assert_close(loss16, loss32, rtol=2e-2, atol=2e-2)
    for name in ("net.classifier.fc8.weight", "net.features.conv1.weight"):
        g32, g16 = grads32[name], grads16[name]
        cosine = F.cosine_similarity(g32.flatten(), g16.flatten(), dim=0)
        assert cosine > 0.97, name  # measured 0.98 at conv1: bf16 rounding accumulates downwards
