"""Section 5's optimiser and schedule, with biases treated as the authors' code treats them.

The values live in conf/train.yaml's ``optim`` node, their one home; this class is that node's
schema (training/config.py checks the YAML against its fields) and builds the optimiser from it.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class PaperSGD:
    lr: float
    momentum: float
    weight_decay: float
    bias_weight_decay: float
    bias_lr_mult: float
    lr_factor: float
    lr_patience: int
    lr_reductions: int

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"lr_factor must be in (0, 1), got {self.lr_factor}")
        if self.bias_lr_mult <= 0:
            raise ValueError(f"bias_lr_mult must be positive, got {self.bias_lr_mult}")
        for name in ("momentum", "weight_decay", "bias_weight_decay", "lr_patience", "lr_reductions"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        return asdict(self)

    def param_groups(self, net: nn.Module) -> list[dict]:
        """Weights and biases of every conv and linear layer, taken by kind (``m.weight``, ``m.bias``).

        Section 5's update rule decays the weights w. cuda-convnet's weight cost ``wc`` applies to
        weights only, and Caffe's bvlc_alexnet gives every bias ``decay_mult: 0`` (and ``lr_mult: 2``);
        see docs/fidelity.md. A parameter of any other kind is an error rather than a silent default.
        """
        weights, biases = [], []
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                weights.append(m.weight)
                if m.bias is not None:
                    biases.append(m.bias)
        taken = {id(p) for p in weights + biases}
        other = [name for name, p in net.named_parameters() if id(p) not in taken]
        if other:
            raise ValueError(f"parameters of a kind PaperSGD does not know (neither conv/linear weight nor bias): {other}")
        return [
            {"name": "weights", "params": weights, "lr": self.lr, "weight_decay": self.weight_decay},
            {"name": "biases", "params": biases, "lr": self.lr * self.bias_lr_mult, "weight_decay": self.bias_weight_decay},
        ]

    def build(self, net: nn.Module) -> dict:
        """Lightning's ``configure_optimizers`` answer: SGD and the plateau schedule."""
        groups = self.param_groups(net)
        # PyTorch's SGD equals the paper's v <- 0.9 v - 0.0005 e w - e dL/dw while the learning
        # rate e is constant (it folds e into v differently when e changes).
        optimizer = torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)
        # "divide the learning rate by 10 when the validation error rate stopped improving
        # ... reduced three times prior to termination": each group's floor stops a fourth reduction.
        floor = self.lr_factor**self.lr_reductions * (1 - 1e-6)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.lr_factor, patience=self.lr_patience, min_lr=[g["lr"] * floor for g in groups]
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/top1_err", "interval": "epoch"}}
