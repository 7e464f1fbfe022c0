"""One training run: config validation, the LightningModule, fine-tuning, DDP under Hydra, the run's summary."""

from alexnet.training.module import LitAlexNet, TopKError

__all__ = ["LitAlexNet", "TopKError"]
