"""Figure 1: a four-layer CNN on CIFAR-10 reaches 25% training error six times faster with
ReLUs than with tanh units ("the learning rates for each network were chosen independently
to make training as fast as possible. No regularization of any kind was employed").

The paper does not give the network. This one has the layout of cuda-convnet's
``layers-18pct`` CIFAR-10 net (the authors' own code) without its response normalisation:
three 5x5 conv layers and one fully connected layer. It is trained with AlexNet's own recipe
(section 2: raw 0..255 pixels minus the mean image; section 5: weights N(0, 0.01), SGD with
momentum 0.9, batch 128). conv1 has 16 kernels instead of 32, which halves an epoch's time on a
CPU (docs/small-scale-results.md has the measured run).

Run: ``python -m alexnet.experiments.fig1`` or ``python train.py experiment=fig1_relu_vs_tanh``.
"""

# ruff: noqa: E402 (the imports follow the process tuning)
if __name__ == "__main__":  # an entry point: tune the process before torch loads (alexnet.host)
    from alexnet.host import tune_process

    tune_process()

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from alexnet.data.decode import UnreadableImage, decode
from alexnet.data.listing import is_image

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
SEGMENTS = 5  # training error points per epoch (cuda-convnet's five CIFAR-10 data batches)
CHANCE = 0.9  # training error of an untrained net on ten classes: the curves start there


def load_folder(root: Path, split: str, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of ``root/split/<class>/*`` as one uint8 tensor (N, 3, 32, 32), decoded once."""
    names = class_names(root)
    files, labels = [], []
    for index, name in enumerate(names):
        found = sorted(p for p in (root / split / name).iterdir() if is_image(p.name))
        files += found
        labels += [index] * len(found)
    if not files:
        raise FileNotFoundError(f"fig1.data_root: no images in {root / split}/<class>/")
    if limit:  # an evenly spaced subset keeps every class
        keep = torch.linspace(0, len(files) - 1, limit).long().tolist()
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    images = torch.stack([read_image(f) for f in files])
    return images, torch.tensor(labels)


def read_image(file: Path, size: int = 32) -> torch.Tensor:
    """The project's one decoding rule (``alexnet.data.decode``): CIFAR-10's 32x32 images as they are."""
    try:
        return decode(file.read_bytes(), size)
    except UnreadableImage as err:
        raise UnreadableImage(f"{file}: {err}") from err


def class_names(root: Path) -> list[str]:
    labels = root / "labels.txt"  # torchvision's class order
    if labels.exists():
        return [line.split()[0] for line in labels.read_text().splitlines() if line.strip()]
    return sorted(p.name for p in (root / "train").iterdir() if p.is_dir())


def load_cifar(data_root: str, download_dir: str, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    root = Path(data_root)
    if (root / "train").is_dir():
        return load_folder(root, "train", limit)
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(download_dir, train=True, download=True)
    except Exception as err:  # offline
        raise FileNotFoundError(f"fig1.data_root: {root} has no train/ folder and the download failed: {err}") from err
    images, labels = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)
    if limit:
        keep = torch.linspace(0, len(labels) - 1, limit).long()
        images, labels = images[keep], labels[keep]
    return images, labels


class FourLayerNet(nn.Module):
    """layers-18pct without LRN: conv5x5-act-maxpool3/2, conv5x5-act-avgpool3/2, conv5x5-act-avgpool3/2, fc10."""

    def __init__(self, activation: str, widths: list[int]):
        super().__init__()
        act = ACTIVATIONS[activation]
        c1, c2, c3 = widths
        # ceil_mode: cuda-convnet's pooling covers the border, 32 -> 16 -> 8 -> 4.
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 5, padding=2),
            act(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(c1, c2, 5, padding=2),
            act(),
            nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(c2, c3, 5, padding=2),
            act(),
            nn.AvgPool2d(3, 2, ceil_mode=True),
        )
        self.fc = nn.Linear(c3 * 16, 10)
        # Section 5's N(0, 0.01) weights; zero biases (the bias 1 of section 5 is for ReLUs only).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def train(images, labels, mean, activation: str, lr: float, cfg: dict, deadline: float, max_epochs: float):
    """SGD until the training error reaches cfg['target'], ``max_epochs`` or the deadline.

    The training error is measured as cuda-convnet printed it for CIFAR-10 (five data batches of
    10,000 images per epoch): the error on the last fifth of an epoch, on the minibatches as they
    were trained on (no dropout or augmentation here). Returns [(epoch, error)] every fifth of an
    epoch; an error of nan means the loss diverged.
    """
    torch.manual_seed(cfg["seed"])
    net = FourLayerNet(activation, cfg["widths"]).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg["momentum"])
    bs, n = cfg["batch_size"], len(labels)
    steps = n // bs
    marks = {round(steps * k / SEGMENTS) for k in range(1, SEGMENTS + 1)}  # the steps that end a fifth
    points, wrong, seen, epoch = [], 0, 0, 0
    while epoch < max_epochs:
        order = torch.randperm(n)
        for step in range(1, steps + 1):
            idx = order[(step - 1) * bs : step * bs]
            x = (images[idx].float() - mean).contiguous(memory_format=torch.channels_last)
            logits = net(x)
            loss = F.cross_entropy(logits, labels[idx])
            if not math.isfinite(loss.item()):
                return points + [(round(epoch + step / steps, 3), math.nan)]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wrong += (logits.argmax(1) != labels[idx]).sum().item()
            seen += bs
            if step in marks:
                points.append((round(epoch + step / steps, 3), wrong / seen))
                wrong = seen = 0
                if points[-1][1] <= cfg["target"] or time.time() > deadline or points[-1][0] >= max_epochs:
                    log_point(activation, lr, points[-1])
                    return points
        epoch += 1
        log_point(activation, lr, points[-1])
    return points


def log_point(activation: str, lr: float, point: tuple[float, float]) -> None:
    print(f"  {activation} lr={lr:g} epoch {point[0]:g}: training error {100 * point[1]:.1f}%", flush=True)


def pick_lr(images, labels, mean, activation: str, cfg: dict) -> float:
    """The fastest learning rate of the grid: lowest training error after a few passes over a subset."""
    keep = torch.linspace(0, len(labels) - 1, min(cfg["search_images"], len(labels))).long()
    results = {}
    for lr in cfg["lr_grid"]:
        err = train(images[keep], labels[keep], mean, activation, lr, {**cfg, "target": 0}, math.inf, cfg["search_epochs"])[-1][1]
        results[lr] = err if math.isfinite(err) else 1.0
    best = min(results, key=results.get)
    print(f"  {activation}: lr search {results} -> {best:g}", flush=True)
    return best


def epochs_to(points: list[tuple[float, float]], target: float) -> float | None:
    """Fractional epoch at which the error curve (linear between points, chance at 0) first reaches target."""
    prev_epoch, prev_err = 0.0, CHANCE
    for epoch, err in points:
        if err <= target:
            return prev_epoch + (prev_err - target) / (prev_err - err) * (epoch - prev_epoch)
        prev_epoch, prev_err = epoch, err
    return None


def run(cfg: dict, out: Path) -> dict:
    """Both nets, the figure and fig1.json; ``cfg`` is the ``fig1`` node of conf/experiment/fig1_relu_vs_tanh.yaml."""
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    images, labels = load_cifar(cfg["data_root"], cfg["download_dir"], cfg["train_images"])
    mean = images.float().mean(0)  # the mean image, as for ImageNet (section 2)
    print(f"fig1: {len(labels)} CIFAR-10 training images loaded in {time.time() - start:.0f} s", flush=True)
    curves, lrs, seconds = {}, {}, {}
    # The ReLU net may use half the time; the tanh net the rest (more, when the ReLU net is quick).
    for activation, share in (("relu", 0.5), ("tanh", 1.0)):
        t0 = time.time()
        lrs[activation] = cfg["lr"].get(activation) or pick_lr(images, labels, mean, activation, cfg)
        deadline = start + share * cfg["time_limit_s"]
        curves[activation] = train(images, labels, mean, activation, lrs[activation], cfg, deadline, cfg["max_epochs"])
        seconds[activation] = round(time.time() - t0, 1)
    result = summarise(curves, lrs, seconds, cfg, time.time() - start)
    result["train_images"] = len(labels)
    (out / "fig1.json").write_text(json.dumps(result, indent=1))
    plot(curves, cfg["target"], result, out / "fig1_relu_vs_tanh.png")
    print(result["verdict"])
    print(f"fig1: plot {out / 'fig1_relu_vs_tanh.png'}")
    return result


def summarise(curves: dict, lrs: dict, seconds: dict, cfg: dict, wall: float) -> dict:
    target = cfg["target"]
    relu, tanh = (epochs_to(curves[a], target) for a in ("relu", "tanh"))
    ran = {a: curves[a][-1][0] if curves[a] else 0.0 for a in curves}
    result = {
        "status": "finished",
        "target_train_err": target,
        "lr": lrs,
        "seconds": seconds,
        "wall_seconds": round(wall, 1),
        "epochs_run": ran,
        "epochs_to_target": {"relu": relu, "tanh": tanh},
        "widths": cfg["widths"],
        "batch_size": cfg["batch_size"],
        "train_err": {a: [list(p) for p in c] for a, c in curves.items()},
    }
    result["speedup"], result["speedup_is_lower_bound"] = None, False
    if relu is not None and tanh is not None:
        result["speedup"] = tanh / relu
        result["verdict"] = (
            f"ReLU: {relu:.2f} epochs, tanh: {tanh:.2f} epochs to {target:.0%} training error; "
            f"speed-up {tanh / relu:.1f}x (paper: 6x)"
        )
    elif relu is not None:
        # tanh has not reached the target in the epochs it ran: the ratio is at least this.
        result["speedup"], result["speedup_is_lower_bound"] = ran["tanh"] / relu, True
        result["verdict"] = (
            f"ReLU: {relu:.2f} epochs to {target:.0%} training error; "
            f"tanh: not reached in {ran['tanh']:g} epochs (cap); "
            f"speed-up >= {result['speedup']:.1f}x (paper: 6x)"
        )
    else:
        result["verdict"] = (
            f"ReLU did not reach {target:.0%} training error in {ran['relu']:g} epochs (cap): no ratio at {target:.0%}"
        )
    # Also the ratio at the lowest error both nets reached: a measure that exists whatever the cap.
    finite = {a: [e for _, e in c if math.isfinite(e)] for a, c in curves.items()}
    if all(finite.values()):
        common = max(min(finite["relu"]), min(finite["tanh"]))
        r, t = epochs_to(curves["relu"], common), epochs_to(curves["tanh"], common)
        result["common_level"] = {"train_err": common, "epochs": {"relu": r, "tanh": t}, "speedup": t / r}
        result["verdict"] += f"; at {common:.1%} (lowest error both reached): ReLU {r:.2f}, tanh {t:.2f} epochs, {t / r:.1f}x"
    return result


def plot(curves: dict, target: float, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for activation, style in (("relu", "-"), ("tanh", "--")):
        epochs, errs = zip(*([(0.0, CHANCE)] + list(curves[activation])))
        ax.plot(
            epochs,
            errs,
            style,
            color="k",
            label=f"{'ReLU' if activation == 'relu' else 'tanh'} (lr {result['lr'][activation]:g})",
        )
    ax.axhline(target, color="grey", lw=0.8)
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Training error rate")
    ax.set_ylim(0, 0.95)
    if result["speedup"]:
        bound = ">= " if result["speedup_is_lower_bound"] else ""
        ax.set_title(f"to {target:.0%} training error: ReLU {bound}{result['speedup']:.1f}x faster", fontsize=10)
    elif result.get("common_level"):
        c = result["common_level"]
        ax.set_title(f"{target:.0%} not reached by ReLU (cap); to {c['train_err']:.0%}: {c['speedup']:.1f}x", fontsize=10)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_from_config(cfg) -> dict:
    """``python train.py experiment=fig1_relu_vs_tanh``: the ``fig1`` node, and a summary.json like every run's."""
    from omegaconf import OmegaConf

    from alexnet.paths import RunDir
    from alexnet.training.summary import run_info

    out = Path(cfg.paths.output_dir)
    result = run(OmegaConf.to_container(cfg.fig1, resolve=True), out)
    summary = {k: result[k] for k in ("status", "epochs_to_target", "speedup", "speedup_is_lower_bound", "lr", "wall_seconds")}
    RunDir(out).write_summary({**summary, "run_dir": str(out), **run_info(cfg)})
    return summary


def defaults(overrides: list[str] = ()) -> dict:
    """The ``fig1`` node as ``python train.py experiment=fig1_relu_vs_tanh`` composes it (the YAML owns every default)."""
    from alexnet.training.config import as_dict, compose_train

    return as_dict(compose_train("experiment=fig1_relu_vs_tanh", *(f"fig1.{o}" for o in overrides)), "fig1")


def keys_help() -> str:
    """Every KEY=VALUE the command takes, with its value in the YAML (unresolved: as written there)."""
    from omegaconf import OmegaConf

    from alexnet.paths import project_root

    node = OmegaConf.to_container(OmegaConf.load(project_root() / "conf" / "experiment" / "fig1_relu_vs_tanh.yaml").fig1)
    lines = [f"  {key}={value}" for key, value in node.items()]
    return "keys (conf/experiment/fig1_relu_vs_tanh.yaml, fig1 node):\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="outputs/fig1", help="folder for fig1_relu_vs_tanh.png and fig1.json")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="keys of conf/experiment/fig1_relu_vs_tanh.yaml's fig1 node, e.g. max_epochs=2 lr.tanh=null",
    )
    args = parser.parse_args(argv)
    run(defaults(args.overrides), Path(args.out))


if __name__ == "__main__":
    main()
