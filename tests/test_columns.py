"""conv1 per GPU column equals one convolution, with the same parameters (checkpoints load)."""

import pytest
import torch
from builders import paper_net
from torch import nn

from alexnet.models.columns import ColumnConv2d


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_columns_give_one_convolutions_output_and_gradients(fmt):
    torch.manual_seed(0)
    split = ColumnConv2d(3, 8, 5, stride=2, columns=2).double().to(memory_format=fmt)
    whole = nn.Conv2d(3, 8, 5, stride=2).double().to(memory_format=fmt)
    whole.load_state_dict(split.state_dict())
    x = torch.randn(2, 3, 15, 15, dtype=torch.float64).contiguous(memory_format=fmt)
    g = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    out, ref = split(x), whole(x)
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous(memory_format=fmt)
    out.backward(g)
    ref.backward(g)
    for a, b in zip(split.parameters(), whole.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def test_alexnet_keeps_its_parameter_names_and_conv1_type():
    net = paper_net()
    assert isinstance(net.features.conv1, nn.Conv2d) and net.features.conv1.columns == 2
    assert paper_net(columns=1).features.conv1.columns == 1
    assert "features.conv1.weight" in net.state_dict() and net.features.conv1.weight.shape == (96, 3, 11, 11)


def test_uneven_split_is_rejected():
    with pytest.raises(ValueError, match="divisible"):
        ColumnConv2d(3, 7, 3, columns=2)
