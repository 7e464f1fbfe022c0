"""The model-step switches that Lightning's Trainer does not own: channels-last and torch.compile.

Their node is ``callbacks.fast_path`` (off by default); ``trainer=gpu`` turns them on together with
``precision: bf16-mixed``. This callback applies them when the run is set up.
"""

import logging

import lightning as L
import torch

log = logging.getLogger(__name__)


class FastPath(L.Callback):
    def __init__(self, *, channels_last: bool, compile: bool):
        self.channels_last, self.compile = channels_last, compile

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        apply(pl_module, self.channels_last, self.compile)


def apply(pl_module: L.LightningModule, channels_last: bool, compile: bool) -> None:
    if channels_last:
        # cuDNN's bf16 tensor-core kernels want NHWC; the module converts each input batch too.
        pl_module.use_channels_last()
    if compile:
        # Compilation errors (no C++ compiler, no Triton, an unsupported op) fall back to eager
        # with a warning instead of ending the run.
        torch._dynamo.config.suppress_errors = True
        pl_module.net.compile()  # in place: state_dict keys, hence checkpoints, stay unchanged
        log.info("torch.compile enabled for the network (falls back to eager where it fails)")
