"""The LightningModule: AlexNet, the paper's SGD and schedule (section 5), top-1/top-5 error."""

import inspect
from typing import Any

import lightning as L
import torch
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from alexnet.models import AlexNet, saved_model_config
from alexnet.training.optim import PaperSGD


class TopKError(MulticlassAccuracy):
    """The paper reports error rates: the fraction of images whose label is not among the top k."""

    def __init__(self, num_classes: int, top_k: int):
        super().__init__(num_classes=num_classes, top_k=top_k, average="micro")

    def compute(self) -> torch.Tensor:
        return 1.0 - super().compute()


class LitAlexNet(L.LightningModule):
    """AlexNet with the paper's recipe. ``model`` and ``optim`` are the config's nodes of the same
    names (alexnet.models.AlexNet's and alexnet.training.optim.PaperSGD's arguments);
    ``test_crops`` is the data's: how many crops of each test image a test batch holds."""

    def __init__(self, model: dict[str, Any], optim: dict[str, Any], test_crops: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self.optim = PaperSGD(**optim)
        self.net = AlexNet(**model)
        self.test_crops = test_crops
        self.channels_last = False
        k = self.net.num_classes
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_top1", TopKError(k, 1))
            setattr(self, f"{stage}_top5", TopKError(k, min(5, k)))

    def use_channels_last(self) -> None:
        """Weights and every input batch in NHWC (cuDNN's bf16 tensor-core kernels want it)."""
        self.net.to(memory_format=torch.channels_last)
        self.channels_last = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def predict_proba(self, x: torch.Tensor, crops: int = 1) -> torch.Tensor:
        """Softmax probabilities; with ``crops`` > 1, ``x`` is (B, crops, 3, H, W) and the
        probabilities are averaged over each image's crops (section 4.1)."""
        if crops == 1 and x.ndim == 4:
            return F.softmax(self(x).float(), dim=1)
        if x.ndim != 5 or x.shape[1] != crops:
            raise ValueError(f"expected a batch of (B, {crops}, 3, H, W) for {crops} crops, got {tuple(x.shape)}")
        b = x.shape[0]
        return F.softmax(self(x.flatten(0, 1)).float(), dim=1).view(b, crops, -1).mean(1)

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

    def evaluate(self, batch, stage: str, crops: int) -> None:
        x, y = batch
        probs = self.predict_proba(x, crops)
        loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), y)
        top1, top5 = getattr(self, f"{stage}_top1"), getattr(self, f"{stage}_top5")
        top1.update(probs, y)
        top5.update(probs, y)
        self.log(f"{stage}/loss", loss, sync_dist=True)
        self.log_dict({f"{stage}/top1_err": top1, f"{stage}/top5_err": top5}, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx: int) -> None:
        self.evaluate(batch, "val", crops=1)  # the centre crop (the data module's val batches)

    def test_step(self, batch, batch_idx: int) -> None:
        self.evaluate(batch, "test", crops=self.test_crops)

    def configure_optimizers(self):
        return self.optim.build(self.net)


def load_module(path: str, map_location="cpu") -> LitAlexNet:
    """A LitAlexNet from a checkpoint file, including those saved before the optimiser's settings
    became one ``optim`` node (their flat ``lr``, ``momentum``, ... hyperparameters) and those
    whose model node predates a key (``saved_model_config``)."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    hp = dict(checkpoint.get("hyper_parameters") or {})
    if "optim" not in hp:
        flat = {k: hp.pop(k) for k in list(hp) if k in PaperSGD.__dataclass_fields__}
        # Those runs decayed the biases like the weights, at the same learning rate.
        hp["optim"] = {"bias_weight_decay": flat["weight_decay"], "bias_lr_mult": 1.0, **flat}
    hp["model"] = saved_model_config(hp.get("model") or {})
    missing = set(inspect.signature(AlexNet).parameters) - set(hp["model"])
    if missing:  # saved before a model key existed (init, lrn_compiled): its value from conf/model/alexnet.yaml
        from alexnet.training.config import node

        hp["model"] = {**{k: v for k, v in node("model", "experiment=alexnet_paper").items() if k in missing}, **hp["model"]}
    module = LitAlexNet(**{k: v for k, v in hp.items() if k in ("model", "optim", "test_crops")})
    module.load_state_dict(checkpoint["state_dict"])
    return module.to(map_location)
