"""Training-step throughput: this project's LightningModule against a bare PyTorch loop over the
same network, batch and threads, and against torchvision's AlexNet in the same loop.

    python -m alexnet.bench.model [--batch 128] [--crop 227] [--steps 5] [--device cpu|cuda]

Each measurement feeds uint8 256x256 batches that already sit in host memory, so the loader is
out of the picture (``alexnet.bench.data`` measures it): host-to-device copy, device-side
augmentation, forward, backward and the SGD step are in.
"""

import argparse
import time
from dataclasses import dataclass

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from alexnet.data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC, BatchAugment
from alexnet.models import AlexNet
from alexnet.training.module import LitAlexNet
from alexnet.callbacks.fast_path import apply as apply_fast_path


@dataclass
class Setup:
    batch: int = 128
    crop: int = 227
    steps: int = 5
    warmup: int = 2
    device: str = "cpu"
    precision: str = "32-true"  # or bf16-mixed
    channels_last: bool = False
    compile: bool = False

    @property
    def resize(self) -> int:
        return max(256, self.crop) if self.crop >= 224 else round(self.crop * 256 / 227)


def make_augment(s: Setup) -> BatchAugment:
    mean = torch.full((3, 1, 1), 120.0)
    eigval = torch.tensor(IMAGENET_EIGVAL) * 255
    return BatchAugment(mean, s.crop, True, eigval, torch.tensor(IMAGENET_EIGVEC)).to(s.device)


def host_batches(s: Setup, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    pin = s.device == "cuda"
    out = []
    for _ in range(n):
        x = torch.randint(0, 256, (s.batch, 3, s.resize, s.resize), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 1000, (s.batch,), generator=g)
        out.append((x.pin_memory(), y.pin_memory()) if pin else (x, y))
    return out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bare_loop(net: torch.nn.Module, s: Setup) -> float:
    """Images per second of the plain PyTorch loop."""
    net = net.to(s.device)
    if s.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if s.compile:
        net.compile()
    augment = make_augment(s)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    batches = host_batches(s, 2)
    bf16 = s.precision.startswith("bf16")
    start = 0.0
    for step in range(s.warmup + s.steps):
        if step == s.warmup:
            sync(s.device)
            start = time.perf_counter()
        x, y = batches[step % 2]
        x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
        x = augment.train_batch(x)
        if s.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(s.device, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(s.device)
    return s.batch * s.steps / (time.perf_counter() - start)


class HostBatches(Dataset):
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return 10**9

    def __getitem__(self, i):
        return self.batches[i % len(self.batches)]


class BatchesOnDevice(L.LightningDataModule):
    """The DataModule's device-side augmentation hook, fed with ready host batches."""

    def __init__(self, s: Setup):
        super().__init__()
        self.s, self.augment = s, make_augment(s)

    def train_dataloader(self):
        # batch_size=None: the dataset already yields whole batches.
        return DataLoader(HostBatches(host_batches(self.s, 2)), batch_size=None)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return self.augment.train_batch(x), y


class StepTimer(L.Callback):
    """Wall time of the steps after the warm-up ones (epochs may roll over on small folders)."""

    def __init__(self, s: Setup):
        self.s, self.step, self.start, self.end = s, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.step == self.s.warmup:
            sync(self.s.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.step += 1
        if self.step == self.s.warmup + self.s.steps:
            sync(self.s.device)
            self.end = time.perf_counter()


def lightning_loop(s: Setup) -> float:
    """Images per second of LitAlexNet under a real Trainer (metrics and logging on, as in training)."""
    module = LitAlexNet(dict(num_classes=1000, crop_size=s.crop))
    apply_fast_path(module, s.channels_last, s.compile)
    return timed_fit(s, module, BatchesOnDevice(s))


def timed_fit(s: Setup, module: L.LightningModule, datamodule: L.LightningDataModule) -> float:
    """Images per second over the steps after the warm-up, training only (no validation, no logging to disk)."""
    # The plateau schedule steps on validation error, which a benchmark leaves out: SGD alone.
    optimizer = module.configure_optimizers()["optimizer"]
    module.configure_optimizers = lambda: optimizer
    timer = StepTimer(s)
    trainer = L.Trainer(
        accelerator=s.device,
        devices=1,
        precision=s.precision,
        max_steps=s.warmup + s.steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return s.batch * s.steps / (timer.end - timer.start)


def forward_gmacs(net: torch.nn.Module, crop: int) -> float:
    """Multiply-accumulates of one forward pass, counted from the layer shapes."""
    total = 0

    def count(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, crop, crop))
    for h in hooks:
        h.remove()
    net.train()
    return total / 1e9


def matmul_peak_tflops(device: str) -> float:
    """Measured bf16 matrix-multiply peak of this device (8192^3 GEMMs)."""
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def run(s: Setup) -> list[dict]:
    """Rows of (name, images/s, note)."""
    import torchvision

    rows = []
    torch.manual_seed(0)
    lit = lightning_loop(s)
    bare = bare_loop(AlexNet(num_classes=1000, crop_size=s.crop), s)
    tv = bare_loop(torchvision.models.alexnet(num_classes=1000), s)  # its adaptive pool takes any crop
    # Forward + backward ~ 3x the forward multiply-accumulates, 2 FLOPs each.
    flops = 6 * forward_gmacs(AlexNet(crop_size=s.crop), s.crop) * 1e9
    rows.append({"name": "LightningModule train step", "images_per_s": lit, "tflops": lit * flops / 1e12})
    rows.append({"name": "bare PyTorch loop, same net", "images_per_s": bare, "tflops": bare * flops / 1e12})
    rows.append({"name": "torchvision alexnet, bare loop", "images_per_s": tv})
    rows.append({"name": "Lightning overhead", "value": f"{100 * (1 - lit / bare):+.1f}%"})
    return rows


def parse(argv=None) -> Setup:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=Setup.batch)
    p.add_argument("--crop", type=int, default=Setup.crop)
    p.add_argument("--steps", type=int, default=Setup.steps)
    p.add_argument("--warmup", type=int, default=Setup.warmup)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default=None, help="default: bf16-mixed on cuda, 32-true on cpu")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=None, help="channels-last + torch.compile (default on cuda)")
    a = p.parse_args(argv)
    cuda = a.device == "cuda"
    fast = cuda if a.fast is None else a.fast
    return Setup(a.batch, a.crop, a.steps, a.warmup, a.device, a.precision or ("bf16-mixed" if cuda else "32-true"), fast, fast)


if __name__ == "__main__":
    from alexnet.bench.report import print_rows

    setup = parse()
    print_rows(f"model step, batch {setup.batch}, crop {setup.crop}, {setup.device}, {setup.precision}", run(setup))
