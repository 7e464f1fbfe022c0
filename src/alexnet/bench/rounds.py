"""Model-step rounds that alternate, A B C A B C ...: the LightningModule, the bare loop over the
same net, torchvision's AlexNet in that loop.

One ``Trainer.fit`` runs all the Lightning rounds (the Trainer is built once); after every round
of its steps a callback runs one round of each bare loop, in the same process, threads and
batches. Work beside the benchmark then slows all three alike within a round. A round's time is
its median step (on a CPU), and the Lightning overhead is the median of the per-round ratios:
sequential runs of the three (one fit, then one loop, then the other) moved it by several points
between runs on a busy 2-core VM.
"""

import statistics
import time

import lightning as L
import torch
from torch.nn import functional as F
from torch.profiler import record_function

from alexnet.bench.model import BatchesOnDevice, Setup, fit_benchmark, host_batches, make_augment, sync


class BareLoop:
    """The plain PyTorch training step: host batch to device, augmentation, forward, loss,
    backward, SGD. The ``bench::`` ranges name its phases for ``alexnet.bench.layers``."""

    def __init__(self, net: torch.nn.Module, s: Setup):
        self.s, self.net = s, net.to(s.device)
        if s.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if s.compile:
            self.net.compile()
        self.augment = make_augment(s)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.batches, self.i = host_batches(s, 2), 0

    def step(self) -> None:
        s = self.s
        x, y = self.batches[self.i % 2]
        self.i += 1
        with record_function("bench::copy"):
            x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
        with record_function("bench::augment"):
            x = self.augment.train_batch(x)
            if s.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(s.device, dtype=torch.bfloat16, enabled=s.precision.startswith("bf16")):
            with record_function("bench::forward"):
                logits = self.net(x)
            with record_function("bench::loss"):
                loss = F.cross_entropy(logits, y)
        with record_function("bench::optimizer"):
            self.opt.zero_grad(set_to_none=True)
        with record_function("bench::backward"):
            loss.backward()
        with record_function("bench::optimizer"):
            self.opt.step()

    def seconds_per_step(self, steps: int) -> float:
        sync(self.s.device)
        ends = [time.perf_counter()]
        for _ in range(steps):
            self.step()
            ends.append(time.perf_counter())
        sync(self.s.device)
        ends[-1] = time.perf_counter()
        return round_seconds(ends, self.s.device)


class Alternate(L.Callback):
    """Times each Lightning step from the previous batch's end to its own (data fetch, hooks,
    metrics and logging included) and, after every round of them, runs one round of each bare
    loop. Syncs the device only at round boundaries."""

    def __init__(self, s: Setup, loops: dict[str, BareLoop]):
        self.s, self.loops, self.done, self.ends = s, loops, 0, []
        self.seconds: dict[str, list[float]] = {"lightning": [], **{name: [] for name in loops}}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        s = self.s
        self.done += 1
        timed = self.done - s.warmup
        if timed < 0:
            return
        if timed % s.steps:
            self.ends.append(time.perf_counter())
            return
        sync(s.device)
        if timed == 0:  # the end of Lightning's warm-up: the bare loops warm up here too
            for loop in self.loops.values():
                loop.seconds_per_step(s.warmup)
        else:
            self.ends.append(time.perf_counter())
            self.seconds["lightning"].append(round_seconds(self.ends, s.device))
            for name, loop in self.loops.items():
                self.seconds[name].append(loop.seconds_per_step(s.steps))
        sync(s.device)
        self.ends = [time.perf_counter()]


def alternate(s: Setup, module: L.LightningModule, loops: dict[str, BareLoop]) -> dict[str, list[float]]:
    """Seconds per step of each round: {"lightning": [...], name: [...] for each bare loop}."""
    timer = Alternate(s, loops)
    fit_benchmark(s, module, BatchesOnDevice(s), timer)
    return timer.seconds


def round_seconds(ends: list[float], device: str) -> float:
    """A round's seconds per step from the times its steps ended (``ends[0]``: the round's start).
    On a CPU the median step: one step slowed by other work on the machine does not move it. On
    CUDA the mean: steps run ahead of the host, and only the round's ends are synced."""
    if device == "cuda":
        return (ends[-1] - ends[0]) / (len(ends) - 1)
    return statistics.median([b - a for a, b in zip(ends, ends[1:])])


def median_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median, min and max over rounds of a[i] / b[i]."""
    ratios = [x / y for x, y in zip(a, b)]
    return statistics.median(ratios), min(ratios), max(ratios)
