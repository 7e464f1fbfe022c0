"""Training-step throughput: this project's LightningModule against a bare PyTorch loop over the
same network, batch and threads, and against torchvision's AlexNet in the same loop.

    python -m alexnet.bench.model [--batch 128] [--crop 227] [--rounds 15] [--steps 1] [--warmup 2]
                                  [--device cpu|cuda] [--precision 32-true|bf16-mixed] [--fast|--no-fast]
                                  [--lrn-compiled|--no-lrn-compiled]
    python -m alexnet.bench.model --profile [...]   # where the step's time goes, layer by layer

The three alternate round by round (``alexnet.bench.rounds``): ``--rounds`` rounds of ``--steps``
steps each, after ``--warmup`` steps; rows give the median round with the slowest and fastest.
Rounds of one step interleave the three most finely, so that whatever else the machine does
lands on all three alike.
Each measurement feeds uint8 256x256 batches that already sit in host memory, so the loader is
out of the picture (``alexnet.bench.data`` measures it): host-to-device copy, device-side
augmentation, forward, backward and the SGD step are in. ``--profile`` times rounds x steps steps
of the bare loop under the torch profiler instead (``alexnet.bench.layers``).
"""

# ruff: noqa: E402 (the imports follow the process tuning)
if __name__ == "__main__":  # an entry point: tune the process before torch loads (alexnet.host)
    from alexnet.host import tune_process

    tune_process()

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from alexnet import host
from alexnet.callbacks.fast_path import apply as apply_fast_path
from alexnet.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, BatchAugment
from alexnet.models import AlexNet
from alexnet.training.config import node, paper_optim
from alexnet.training.module import LitAlexNet


@dataclass
class Setup:
    batch: int = 128
    crop: int = 227
    steps: int = 1  # per round
    warmup: int = 2
    device: str = "cpu"
    precision: str = "32-true"  # or bf16-mixed
    channels_last: bool = False
    compile: bool = False
    rounds: int = 15
    lrn_compiled: bool = True  # model.lrn_compiled

    @property
    def timed_steps(self) -> int:
        """Steps timed per measurement: every round's, or as many in one stretch (end to end, profile)."""
        return self.rounds * self.steps

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
        if self.step == self.s.warmup + self.s.timed_steps:
            sync(self.s.device)
            self.end = time.perf_counter()


def paper_model(s: Setup) -> dict:
    """The paper's model node (1000 classes, conf/model/alexnet.yaml) at the benchmark's crop and LRN kernel."""
    return node("model", "experiment=alexnet_paper", f"model.crop_size={s.crop}", f"model.lrn_compiled={s.lrn_compiled}")


def lit_module(s: Setup) -> LitAlexNet:
    """LitAlexNet as training runs it (metrics and logging on)."""
    module = LitAlexNet(paper_model(s), paper_optim())
    apply_fast_path(module, s.channels_last, s.compile)
    return module


def fit_benchmark(s: Setup, module: L.LightningModule, datamodule: L.LightningDataModule, timer: L.Callback) -> None:
    """``Trainer.fit`` for warm-up + timed steps, training only (no validation, no logging to disk), ``timer`` watching."""
    # The plateau schedule steps on validation error, which a benchmark leaves out: SGD alone.
    optimizer = module.configure_optimizers()["optimizer"]
    module.configure_optimizers = lambda: optimizer
    trainer = L.Trainer(
        accelerator=s.device,
        devices=1,
        precision=s.precision,
        max_steps=s.warmup + s.timed_steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)


def timed_fit(s: Setup, module: L.LightningModule, datamodule: L.LightningDataModule) -> float:
    """Images per second over the steps after the warm-up."""
    timer = StepTimer(s)
    fit_benchmark(s, module, datamodule, timer)
    return s.batch * s.timed_steps / (timer.end - timer.start)


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
    """Rows of (name, images/s median over rounds, (min, max), note)."""
    import torchvision

    from alexnet.bench.rounds import BareLoop, alternate, median_ratio

    torch.manual_seed(0)
    module = lit_module(s)
    torch.manual_seed(0)
    loops = {
        "bare": BareLoop(AlexNet(**paper_model(s)), s),
        "torchvision": BareLoop(torchvision.models.alexnet(num_classes=1000), s),  # its adaptive pool takes any crop
    }
    seconds = alternate(s, module, loops)
    # Forward + backward ~ 3x the forward multiply-accumulates, 2 FLOPs each.
    flops = 6 * forward_gmacs(AlexNet(**paper_model(s)), s.crop) * 1e9
    rows = []
    for key, name in [
        ("lightning", "LightningModule train step"),
        ("bare", "bare PyTorch loop, same net"),
        ("torchvision", "torchvision alexnet, bare loop"),
    ]:
        rates = sorted(s.batch / t for t in seconds[key])
        row = {"name": name, "images_per_s": statistics.median(rates), "range": (rates[0], rates[-1])}
        if key != "torchvision":
            row["tflops"] = row["images_per_s"] * flops / 1e12
        rows.append(row)
    mid, lo, hi = median_ratio(seconds["lightning"], seconds["bare"])
    rows.append(
        {
            "name": "Lightning overhead",
            "overhead": mid - 1,
            "value": f"{100 * (mid - 1):+.1f}% (rounds {100 * (lo - 1):+.1f}% to {100 * (hi - 1):+.1f}%)",
        }
    )
    mid, lo, hi = median_ratio(seconds["torchvision"], seconds["bare"])
    rows.append(
        {
            "name": "this net's step speed / torchvision's",
            "speed_ratio": mid,
            "value": f"{mid:.2f}x (rounds {lo:.2f}x to {hi:.2f}x)",
        }
    )
    return rows


def threads() -> str:
    """The intra-op threads and the host settings the entry point made (alexnet.host)."""
    tuning = host.TUNING
    kept = "process not tuned" if tuning is None else "freed memory kept" if tuning.freed_memory_kept else "malloc as configured"
    return f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, {kept}"


def parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The model-step options; ``python -m alexnet.bench`` takes them too (as a parent parser)."""
    p = argparse.ArgumentParser(
        prog="python -m alexnet.bench.model",
        description=__doc__,
        add_help=add_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--batch", type=int, default=Setup.batch, help="images per step (default: %(default)s)")
    p.add_argument("--crop", type=int, default=Setup.crop, help="training crop side (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=Setup.rounds, help="alternating rounds (default: %(default)s)")
    p.add_argument("--steps", type=int, default=Setup.steps, help="timed steps per round (default: %(default)s)")
    p.add_argument(
        "--lrn-compiled",
        action=argparse.BooleanOptionalAction,
        default=Setup.lrn_compiled,
        help="this net's LRN as one compiled CPU loop, as model.lrn_compiled (default: on)",
    )
    p.add_argument("--warmup", type=int, default=Setup.warmup, help="untimed steps first, at least 1 (default: %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--precision", default=None, help="32-true or bf16-mixed (default: bf16-mixed on cuda, 32-true on cpu)")
    p.add_argument(
        "--fast", action=argparse.BooleanOptionalAction, default=None, help="channels-last + torch.compile (default on cuda)"
    )
    if add_help:  # the whole-table command has no per-layer mode
        p.add_argument("--profile", action="store_true", help="per-layer share of the step (torch profiler) instead of the rows")
    return p


def setup_from(a: argparse.Namespace) -> Setup:
    if a.warmup < 1 or a.steps < 1 or a.rounds < 1:
        raise SystemExit("--warmup, --steps and --rounds must be at least 1")
    cuda = a.device == "cuda"
    fast = cuda if a.fast is None else a.fast
    return Setup(
        batch=a.batch,
        crop=a.crop,
        steps=a.steps,
        warmup=a.warmup,
        device=a.device,
        precision=a.precision or ("bf16-mixed" if cuda else "32-true"),
        channels_last=fast,
        compile=fast,
        rounds=a.rounds,
        lrn_compiled=a.lrn_compiled,
    )


def parse(argv=None) -> Setup:
    return setup_from(parser().parse_args(argv))


def main(argv=None) -> None:
    from alexnet.bench.report import print_layers, print_rows

    args = parser().parse_args(argv)
    setup = setup_from(args)
    where = f"batch {setup.batch}, crop {setup.crop}, {setup.device} ({threads()}), {setup.precision}"
    if args.profile:
        from alexnet.bench.layers import profile

        print_layers(f"where a training step's time goes, {where}, mean of {setup.timed_steps} steps", profile(setup))
        return
    print_rows(f"model step, {where}, median of {setup.rounds} alternating rounds of {setup.steps} steps", run(setup))


if __name__ == "__main__":
    main()
