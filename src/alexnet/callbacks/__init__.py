"""The Trainer's callbacks (conf/callbacks/): checkpoints with exact resume, stops, fast path, progress, figures."""

from alexnet.callbacks.checkpoint import Checkpoint, ExactResume
from alexnet.callbacks.fast_path import FastPath
from alexnet.callbacks.flat_start import FlatStart
from alexnet.callbacks.progress import ProgressBar
from alexnet.callbacks.stopping import FiniteLoss, GracefulStop, RunStopped

__all__ = ["Checkpoint", "ExactResume", "FastPath", "FiniteLoss", "FlatStart", "GracefulStop", "ProgressBar", "RunStopped"]
