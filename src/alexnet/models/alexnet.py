"""AlexNet exactly as in the paper (section 3.5, figure 2), with its ablation switches.

Two-GPU net (``columns=2``): conv2, conv4 and conv5 see only the kernel maps of their own
GPU (``groups=2``); conv3 and the fully connected layers see everything. 60,965,224
parameters at 1000 classes. One-GPU comparison net (``columns=1``): half the kernels in
each conv layer except conv5, no groups; 59,798,312 parameters.
"""

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from alexnet.models.columns import ColumnConv2d
from alexnet.models.lrn import LocalResponseNorm, LRNConvention

Activation = Literal["relu", "tanh"]
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
Init = Literal["paper", "caffe"]
# Which kernel maps an LRN window may span. "column": only those on its own GPU, as in the
# authors' two-GPU config (cuda-convnet2 layers-imagenet-2gpu-model.cfg: [rnorm1a] inputs=conv1a
# channels=48, [rnorm2a] ... channels=128); "all": every map of the layer (Caffe's bvlc_alexnet).
# The one-GPU net has one column, so the two agree there.
LRNScope = Literal["column", "all"]
LRN_SCOPES = ("column", "all")

# Kernels per conv layer. Section 3.5 for the two-GPU net; section 3.2 and its footnote 2 for the
# one-GPU net ("half as many kernels in each convolutional layer", except the last).
KERNELS = {2: (96, 256, 384, 384, 256), 1: (48, 128, 192, 192, 256)}
# Layers that are connected only to the kernel maps on the same GPU (section 3.5).
GROUPED = {2: (1, 2, 1, 2, 2, 2), 1: (1, 1, 1, 1, 1, 1)}  # conv1..conv5, extra conv
# Section 5: "We initialized the neuron biases in the second, fourth, and fifth
# convolutional layers, as well as in the fully-connected hidden layers, with the constant 1."
BIAS_ONE = {"conv2", "conv4", "conv5", "fc6", "fc7"}
# Per init: (weight std, std for fc6/fc7, bias of the BIAS_ONE layers). Section 5 for "paper";
# "caffe" is BVLC/caffe models/bvlc_alexnet/train_val.prototxt (fc6/fc7 weight_filler std 0.005,
# bias_filler 0.1 where the paper has 1), whose readme says bias 1 "gave flat loss".
INITS = {"paper": (0.01, 0.01, 1.0), "caffe": (0.01, 0.005, 0.1)}


def saved_model_config(model: dict) -> dict:
    """A model node as an earlier version saved it (a checkpoint's hyperparameters, a run's
    .hydra/config.yaml), completed with what that version ran: before model.lrn_scope existed,
    every LRN window spanned all of a layer's maps. Every reader of a saved model node calls this."""
    return {"lrn_scope": "all", **model}


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class AlexNet(nn.Module):
    # Every argument is required: conf/model/alexnet.yaml holds the values (the paper's, with
    # its words beside them); this signature is the schema training/config.py checks it against.
    def __init__(
        self,
        *,
        num_classes: int,
        columns: int,
        crop_size: int,
        conv1_padding: int,
        lrn: bool,
        lrn_size: int,
        lrn_alpha: float,
        lrn_beta: float,
        lrn_k: float,
        lrn_convention: LRNConvention,
        lrn_compiled: bool,
        lrn_scope: LRNScope,
        overlap_pool: bool,
        dropout: float,
        activation: Activation,
        extra_conv: bool,
        init: Init,
    ):
        super().__init__()
        if columns not in KERNELS:
            raise ValueError(f"columns must be 1 (one-GPU net) or 2 (two-GPU net), got {columns}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if lrn_scope not in LRN_SCOPES:
            raise ValueError(f"lrn_scope must be one of {LRN_SCOPES}, got {lrn_scope!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {init!r}")
        self.init = init
        self.num_classes, self.columns, self.crop_size = num_classes, columns, crop_size
        c1, c2, c3, c4, c5 = KERNELS[columns]
        g = GROUPED[columns]
        act = ACTIVATIONS[activation]
        # Section 3.4: overlapping pooling z=3, s=2; the ablation uses z=2, s=2 (same output size).
        pool_kernel = 3 if overlap_pool else 2

        def norm() -> nn.Module:
            if not lrn:
                return nn.Identity()
            groups = columns if lrn_scope == "column" else 1
            return LocalResponseNorm(
                size=lrn_size,
                alpha=lrn_alpha,
                beta=lrn_beta,
                k=lrn_k,
                convention=lrn_convention,
                compiled=lrn_compiled,
                groups=groups,
            )

        layers: list[tuple[str, nn.Module]] = [
            # One convolution per GPU column on a CPU (alexnet.models.columns: measured faster).
            ("conv1", ColumnConv2d(3, c1, 11, stride=4, padding=conv1_padding, groups=g[0], columns=columns)),
            ("act1", act()),
            ("norm1", norm()),
            ("pool1", nn.MaxPool2d(pool_kernel, 2)),
            ("conv2", nn.Conv2d(c1, c2, 5, padding=2, groups=g[1])),
            ("act2", act()),
            ("norm2", norm()),
            ("pool2", nn.MaxPool2d(pool_kernel, 2)),
            ("conv3", nn.Conv2d(c2, c3, 3, padding=1, groups=g[2])),
            ("act3", act()),
            ("conv4", nn.Conv2d(c3, c4, 3, padding=1, groups=g[3])),
            ("act4", act()),
            ("conv5", nn.Conv2d(c4, c5, 3, padding=1, groups=g[4])),
            ("act5", act()),
            ("pool5", nn.MaxPool2d(pool_kernel, 2)),
        ]
        if extra_conv:
            # Section 6: the "*" models add "an extra sixth convolutional layer over the last
            # pooling layer". Its width is not given; 256 kernels, 3x3, same-GPU connected
            # like conv4/conv5, keeps the fc6 input unchanged.
            layers += [("conv6", nn.Conv2d(c5, c5, 3, padding=1, groups=g[5])), ("act6", act())]
        self.features = nn.Sequential(OrderedDict(layers))

        side = conv_out(crop_size, 11, 4, conv1_padding)
        for _ in range(3):  # pool1, pool2 (conv2-5 keep the size), pool5
            side = conv_out(side, pool_kernel, 2)
        if side < 1:
            raise ValueError(
                f"crop_size={crop_size} is too small for AlexNet: the feature map vanishes before fc6 "
                f"(use a crop of at least 67 pixels; the paper uses 227)"
            )
        self.feature_size = side  # 6 for the paper's 227x227 crops
        # Section 4.2: dropout sets "the output of each hidden neuron" to zero with probability
        # 0.5, "in the first two fully-connected layers": fc6's and fc7's outputs, after their
        # ReLUs, as in cuda-convnet2's layers-imagenet-2gpu-model.cfg (dropout1a on fc2048a) and
        # Caffe's bvlc_alexnet (relu6 -> drop6 -> fc7, relu7 -> drop7 -> fc8). torchvision drops
        # fc6's and fc7's inputs instead. Dropout has no parameters, so state_dict keys are the
        # same in either order and older checkpoints load.
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(c5 * side * side, 4096)),
                    ("act6", act()),
                    ("drop6", nn.Dropout(dropout)),
                    ("fc7", nn.Linear(4096, 4096)),
                    ("act7", act()),
                    ("drop7", nn.Dropout(dropout)),
                    ("fc8", nn.Linear(4096, num_classes)),
                ]
            )
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Section 5: "We initialized the weights in each layer from a zero-mean Gaussian
        # distribution with standard deviation 0.01." The layers are found by their names in
        # the module tree (conv1..conv6, fc6..fc8), which are also the checkpoint keys.
        std, fc_hidden_std, bias_one = INITS[self.init]
        for name, m in self.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                layer = name.split(".")[-1]
                nn.init.normal_(m.weight, mean=0.0, std=fc_hidden_std if layer in ("fc6", "fc7") else std)
                nn.init.constant_(m.bias, bias_one if layer in BIAS_ONE else 0.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The fc7 activations (4096-d, after the ReLU and dropout), the space of the paper's
        figure 4 nearest neighbours (dropout is the identity in eval mode)."""
        x = torch.flatten(self.features(x), 1)
        return self.classifier[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.fc8(self.forward_features(x))
