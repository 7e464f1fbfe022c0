from alexnet.models.alexnet import AlexNet, saved_model_config
from alexnet.models.lrn import LocalResponseNorm

__all__ = ["AlexNet", "LocalResponseNorm", "saved_model_config"]
