"""The network is the paper's: layer sizes, parameter counts, initialisation, ablation switches."""

import pytest
import torch
from builders import paper_net
from torch import nn

from alexnet.models import AlexNet, LocalResponseNorm


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_two_gpu_net_has_the_papers_parameter_count():
    assert n_params(paper_net()) == 60_965_224


def test_one_gpu_net_has_the_papers_parameter_count():
    assert n_params(paper_net(columns=1)) == 59_798_312


def test_layer_shapes_at_227():
    net = paper_net().eval()
    x = torch.randn(2, 3, 227, 227)
    shapes = {}
    for name, layer in net.features.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    assert shapes["conv1"] == (96, 55, 55)  # (227 - 11) / 4 + 1
    assert shapes["pool1"] == (96, 27, 27)
    assert shapes["conv2"] == (256, 27, 27)
    assert shapes["pool2"] == (256, 13, 13)
    assert shapes["conv3"] == (384, 13, 13)
    assert shapes["conv4"] == (384, 13, 13)
    assert shapes["pool5"] == (256, 6, 6)
    assert net.classifier.fc6.in_features == 256 * 6 * 6
    assert net(torch.randn(2, 3, 227, 227)).shape == (2, 1000)


def test_groups_follow_the_two_gpu_connectivity():
    f = paper_net().features
    assert [f.conv1.groups, f.conv2.groups, f.conv3.groups, f.conv4.groups, f.conv5.groups] == [1, 2, 1, 2, 2]
    assert f.conv2.weight.shape[1] == 48 and f.conv4.weight.shape[1] == 192  # 5x5x48, 3x3x192 kernels
    f1 = paper_net(columns=1).features
    assert [
        f1.conv1.out_channels,
        f1.conv2.out_channels,
        f1.conv3.out_channels,
        f1.conv4.out_channels,
        f1.conv5.out_channels,
    ] == [
        48,
        128,
        192,
        192,
        256,
    ]
    assert all(c.groups == 1 for c in (f1.conv1, f1.conv2, f1.conv3, f1.conv4, f1.conv5))


def test_forward_cost_matches_the_paper():
    # paper.md: 0.724 GMAC (two-GPU) and 0.392 GMAC (one-GPU) per 227x227 image
    def macs(net):
        total = 0

        def hook(m, inp, out):
            nonlocal total
            if isinstance(m, nn.Conv2d):
                total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            else:
                total += m.in_features * m.out_features

        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.register_forward_hook(hook)
        net.eval()(torch.zeros(1, 3, 227, 227))
        return total / 1e9

    assert macs(paper_net()) == pytest.approx(0.724, abs=0.002)
    assert macs(paper_net(columns=1)) == pytest.approx(0.392, abs=0.002)


@pytest.mark.parametrize("crop, side", [(67, 1), (99, 2), (131, 3), (195, 5), (227, 6)])
def test_fc6_input_follows_the_crop_size(crop, side):
    net = paper_net(num_classes=10, crop_size=crop)
    assert net.feature_size == side
    assert net.classifier.fc6.in_features == 256 * side * side
    assert net(torch.randn(2, 3, crop, crop)).shape == (2, 10)


def test_224_crops_need_conv1_padding_2_for_the_papers_sizes():
    assert paper_net(crop_size=224, conv1_padding=2).feature_size == 6
    assert paper_net(crop_size=224).feature_size == 5  # not silently changed


def test_too_small_crop_is_a_clear_error():
    with pytest.raises(ValueError, match="crop_size=63 is too small"):
        paper_net(crop_size=63)


def test_initialisation_is_the_papers():
    torch.manual_seed(0)
    net = paper_net()
    layers = {name.split(".")[-1]: m for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    for name, m in layers.items():
        w = m.weight.detach()
        assert abs(w.mean().item()) < 1e-3, name
        assert w.std().item() == pytest.approx(0.01, rel=0.05 if w.numel() > 1e5 else 0.15), name
        expected_bias = 1.0 if name in {"conv2", "conv4", "conv5", "fc6", "fc7"} else 0.0
        assert torch.all(m.bias == expected_bias), name


def test_lrn_ablation_removes_both_lrn_layers():
    assert sum(isinstance(m, LocalResponseNorm) for m in paper_net().modules()) == 2
    assert sum(isinstance(m, LocalResponseNorm) for m in paper_net(lrn=False).modules()) == 0
    assert n_params(paper_net(lrn=False)) == 60_965_224  # LRN has no parameters


def test_lrn_sits_after_relu_of_conv1_and_conv2():
    names = [n for n, _ in paper_net().features.named_children()]
    assert names[:8] == ["conv1", "act1", "norm1", "pool1", "conv2", "act2", "norm2", "pool2"]


def test_overlap_pool_ablation_uses_2x2_windows_with_the_same_output_size():
    pools = [m for m in paper_net(overlap_pool=False).modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(2, 2)] * 3
    assert [(p.kernel_size, p.stride) for p in paper_net().modules() if isinstance(p, nn.MaxPool2d)] == [(3, 2)] * 3
    assert paper_net(overlap_pool=False).feature_size == 6


def inputs_of(net: AlexNet, layers: tuple[str, ...], x: torch.Tensor) -> dict[str, torch.Tensor]:
    seen = {}
    hooks = [
        getattr(net.classifier, name).register_forward_pre_hook(lambda m, a, name=name: seen.update({name: a[0]}))
        for name in layers
    ]
    net(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("kwargs", [{}, {"columns": 1}, {"extra_conv": True}])
def test_dropout_drops_the_outputs_of_fc6_and_fc7(kwargs):
    # Section 4.2, cuda-convnet2 and Caffe: fc7's and fc8's inputs carry dropout zeros, fc6's
    # does not (torchvision's order drops fc6's input and leaves fc8's alone). The ReLUs are
    # swapped for tanh so that zeros can only come from dropout.
    torch.manual_seed(0)
    net = paper_net(num_classes=10, crop_size=67, activation="tanh", **kwargs).train()
    with torch.no_grad():
        seen = inputs_of(net, ("fc6", "fc7", "fc8"), torch.randn(4, 3, 67, 67))
    zeros = {name: (x == 0).float().mean().item() for name, x in seen.items()}
    assert zeros["fc6"] == 0.0
    assert zeros["fc7"] == pytest.approx(0.5, abs=0.05)
    assert zeros["fc8"] == pytest.approx(0.5, abs=0.05)
    net.eval()
    with torch.no_grad():
        assert all((x != 0).all() for x in inputs_of(net, ("fc7", "fc8"), torch.randn(4, 3, 67, 67)).values())
    assert [d.p for d in paper_net(dropout=0.0).modules() if isinstance(d, nn.Dropout)] == [0.0, 0.0]


def test_caffe_init_is_bvlc_alexnets():
    torch.manual_seed(0)
    layers = {
        name.split(".")[-1]: m for name, m in paper_net(init="caffe").named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    }
    for name, m in layers.items():
        expected_std = 0.005 if name in {"fc6", "fc7"} else 0.01
        assert m.weight.detach().std().item() == pytest.approx(expected_std, rel=0.05 if m.weight.numel() > 1e5 else 0.15), name
        assert torch.all(m.bias == (0.1 if name in {"conv2", "conv4", "conv5", "fc6", "fc7"} else 0.0)), name


def test_tanh_replaces_every_relu():
    net = paper_net(activation="tanh")
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 7


def test_extra_conv_adds_a_sixth_conv_layer_over_the_last_pooling_layer():
    net = paper_net(extra_conv=True)
    names = [n for n, _ in net.features.named_children()]
    assert names[-3:] == ["pool5", "conv6", "act6"]
    assert net.classifier.fc6.in_features == 9216
    assert net(torch.randn(1, 3, 227, 227)).shape == (1, 1000)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dropout": 1.5}, "dropout"),
        ({"init": "xavier"}, "init"),
        ({"activation": "gelu"}, "activation"),
        ({"columns": 3}, "columns"),
        ({"lrn_size": 4}, "odd"),
        ({"lrn_convention": "caffe"}, "convention"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        paper_net(**kwargs)
