from alexnet.models.alexnet import AlexNet
from alexnet.models.lrn import LocalResponseNorm

__all__ = ["AlexNet", "LocalResponseNorm"]
