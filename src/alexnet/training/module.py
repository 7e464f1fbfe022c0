"""The LightningModule: AlexNet, the paper's SGD and schedule (section 5), top-1/top-5 error."""

from typing import Any

import lightning as L
import torch
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from alexnet.models import AlexNet


class TopKError(MulticlassAccuracy):
    """The paper reports error rates: the fraction of images whose label is not among the top k."""

    def __init__(self, num_classes: int, top_k: int):
        super().__init__(num_classes=num_classes, top_k=top_k, average="micro")

    def compute(self) -> torch.Tensor:
        return 1.0 - super().compute()


class LitAlexNet(L.LightningModule):
    def __init__(
        self,
        model: dict[str, Any],
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_factor: float = 0.1,
        lr_patience: int = 5,
        lr_reductions: int = 3,
    ):
        super().__init__()
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0 < lr_factor < 1:
            raise ValueError(f"lr_factor must be in (0, 1), got {lr_factor}")
        self.save_hyperparameters()
        self.net = AlexNet(**model)
        self.channels_last = False  # set by alexnet.callbacks.fast_path.FastPath
        k = self.net.num_classes
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_top1", TopKError(k, 1))
            setattr(self, f"{stage}_top5", TopKError(k, min(5, k)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities; for (B, crops, 3, H, W) inputs averaged over the crops (section 4.1)."""
        if x.ndim == 5:
            b, n = x.shape[:2]
            return F.softmax(self(x.flatten(0, 1)).float(), dim=1).view(b, n, -1).mean(1)
        return F.softmax(self(x).float(), dim=1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_top1.update(logits, y)
        self.train_top5.update(logits, y)
        # DDP: the mean over all ranks, not rank 0's. Not prog_bar: Lightning would read it every
        # step (a GPU host sync); alexnet.callbacks.progress.ProgressBar shows it every few steps.
        self.log("train/loss", loss, sync_dist=True)
        self.log_dict({"train/top1_err": self.train_top1, "train/top5_err": self.train_top5}, on_step=False, on_epoch=True)
        return loss

    def evaluate(self, batch, stage: str) -> None:
        x, y = batch
        probs = self.predict_proba(x)
        loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), y)
        top1, top5 = getattr(self, f"{stage}_top1"), getattr(self, f"{stage}_top5")
        top1.update(probs, y)
        top5.update(probs, y)
        self.log(f"{stage}/loss", loss, sync_dist=True)
        self.log_dict({f"{stage}/top1_err": top1, f"{stage}/top5_err": top5}, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.evaluate(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        # Section 5: batch 128, momentum 0.9, weight decay 0.0005; PyTorch's SGD equals the
        # paper's update rule while the learning rate is constant.
        optimizer = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        # "divide the learning rate by 10 when the validation error rate stopped improving
        # ... reduced three times prior to termination": the floor stops a fourth reduction.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=hp.lr_factor,
            patience=hp.lr_patience,
            min_lr=hp.lr * hp.lr_factor**hp.lr_reductions * (1 - 1e-6),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/top1_err", "interval": "epoch"}}
