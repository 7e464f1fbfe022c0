"""Where a training step's time goes, layer by layer: ``python -m alexnet.bench.model --profile``.

The bare loop (``alexnet.bench.rounds.BareLoop``) over this project's net runs under the torch
profiler. Forward hooks open a ``layer::<name>`` range around every layer; the aten ops inside it
carry autograd sequence numbers, and the autograd engine's ``evaluate_function`` events for their
backward carry the same numbers, so each layer gets its forward and its backward time. The loop's
``bench::`` ranges give the loss, optimiser, augmentation and copy. Times are CPU time per op on
a CPU and the kernels' device time on CUDA. torch.compile fuses layers, so the profile is eager.
"""

from collections import defaultdict
from dataclasses import replace

import torch
from torch import nn
from torch.profiler import ProfilerActivity, record_function

from alexnet.bench.model import Setup, paper_model, sync
from alexnet.bench.rounds import BareLoop
from alexnet.models import AlexNet, LocalResponseNorm

EVALUATE = "autograd::engine::evaluate_function: "
PHASES = {
    "loss": "loss (cross entropy)",
    "optimizer": "optimizer step + zero_grad",
    "augment": "augmentation (crop, flip, PCA, mean)",
    "copy": "host to device copy",
}


def part_of(name: str, m: nn.Module) -> str:
    """conv1..conv6 and fc6..fc8 by name; LRN, pooling, activations and dropout each summed over the net."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        return name.split(".")[-1]
    if isinstance(m, LocalResponseNorm):
        return "LRN (norm1, norm2)"
    if isinstance(m, nn.MaxPool2d):
        return "max pooling"
    if isinstance(m, nn.Dropout):
        return "dropout"
    return type(m).__name__  # ReLU or Tanh


def hook_layers(net: nn.Module) -> list:
    open_ranges: list[record_function] = []

    def enter(label):
        def hook(module, args):
            open_ranges.append(record_function(f"layer::{label}").__enter__())

        return hook

    def leave(module, args, output):
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for name, m in net.named_modules():
        if name and not list(m.children()):
            handles += [m.register_forward_pre_hook(enter(part_of(name, m))), m.register_forward_hook(leave)]
    return handles


def descendants(event):
    for child in event.cpu_children:
        yield child
        yield from descendants(child)


def inside_evaluate(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(EVALUATE):
            return True
        parent = parent.cpu_parent
    return False


def attribute(events, steps: int, cuda: bool) -> list[dict]:
    """Rows of (name, forward ms, backward ms) per step, in the net's order, then the loop's phases."""
    time_of = (lambda e: e.device_time_total) if cuda else (lambda e: e.cpu_time_total)
    forward, backward = defaultdict(float), defaultdict(float)
    owner: dict[int, str] = {}
    phase = defaultdict(float)
    for e in events:
        if e.name.startswith("layer::"):
            label = e.name.removeprefix("layer::")
            forward[label] += time_of(e)
            owner.update((d.sequence_nr, label) for d in descendants(e) if d.sequence_nr >= 0)
        elif e.name.startswith("bench::"):
            key = e.name.removeprefix("bench::")
            phase[key] += time_of(e)
            if key == "loss":
                owner.update((d.sequence_nr, "loss") for d in descendants(e) if d.sequence_nr >= 0)
    for e in events:
        if e.name.startswith(EVALUATE) and not inside_evaluate(e):
            backward[owner.get(e.sequence_nr, "backward, outside the layers (gradient accumulation)")] += time_of(e)

    layer_labels = list(forward)
    rows = [{"name": label, "forward": forward[label], "backward": backward.pop(label, 0.0)} for label in layer_labels]
    rows.append(
        {
            "name": "forward, outside the layers (flatten, hooks)",
            "forward": phase["forward"] - sum(forward.values()),
            "backward": 0.0,
        }
    )
    rows.append({"name": PHASES["loss"], "forward": phase["loss"], "backward": backward.pop("loss", 0.0)})
    rest = sum(backward.values())
    rows.append(
        {
            "name": "backward, outside the layers (gradient accumulation, engine)",
            "forward": 0.0,
            "backward": phase["backward"] - sum(r["backward"] for r in rows) if not cuda else rest,
        }
    )
    for key in ("optimizer", "augment", "copy"):
        rows.append({"name": PHASES[key], "forward": phase[key], "backward": 0.0})
    loop = phase["step"] - sum(phase[k] for k in ("copy", "augment", "forward", "loss", "optimizer", "backward"))
    rows.append({"name": "the loop itself (Python between the phases)", "forward": max(loop, 0.0), "backward": 0.0})
    for row in rows:  # microseconds over all steps -> milliseconds per step
        row["forward"], row["backward"] = row["forward"] / 1e3 / steps, row["backward"] / 1e3 / steps
    return rows


def profile(s: Setup) -> list[dict]:
    """Per-part times of ``s.timed_steps`` bare-loop steps after ``s.warmup`` ones (eager: no torch.compile)."""
    s = replace(s, compile=False)
    torch.manual_seed(0)
    loop = BareLoop(AlexNet(**paper_model(s)), s)
    hook_layers(loop.net)
    for _ in range(s.warmup):
        loop.step()
    cuda = s.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(s.device)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(s.timed_steps):
            with record_function("bench::step"):
                loop.step()
                sync(s.device)
    return attribute(prof.events(), s.timed_steps, cuda)
