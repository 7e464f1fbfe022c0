"""The Trainer's callbacks (conf/callbacks/): stops, fast path, progress, figures (checkpoints and exact
resume: alexnet.checkpointing)."""

from alexnet.callbacks.fast_path import FastPath
from alexnet.callbacks.flat_start import FlatStart
from alexnet.callbacks.progress import ProgressBar
from alexnet.callbacks.stopping import FiniteLoss, GracefulStop

__all__ = ["FastPath", "FiniteLoss", "FlatStart", "GracefulStop", "ProgressBar"]
