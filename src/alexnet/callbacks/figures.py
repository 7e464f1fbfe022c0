"""Figures 3 and 4 of the paper, for a trained network, as PNGs in the run folder.

- conv1_filters.png (figure 3): the 96 conv1 kernels; the two GPU columns side by side ("the
  kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2 are largely color-specific").
- top5.png (figure 4, left): validation images with their five most probable labels.
- neighbours.png (figure 4, right): for query images, the training images whose fc7 vectors
  are nearest in Euclidean distance ("the feature activations induced at the last, 4096-dimensional
  hidden layer"). Training features are streamed; only the k best per query are kept.

``Figures`` (conf/callbacks/default.yaml) draws them at the end of a run and hands them to every
logger while the loggers are still open.
"""

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from alexnet.paths import RunDir

log = logging.getLogger(__name__)


def conv1_grid(net, rows: int = 8, scale: int = 4) -> Image.Image:
    """Each kernel scaled to its own min..max; one panel per column (GPU), side by side."""
    w = net.features.conv1.weight.detach().float().cpu()  # (96, 3, 11, 11)
    w = (w - w.amin((1, 2, 3), keepdim=True)) / (w.amax((1, 2, 3), keepdim=True) - w.amin((1, 2, 3), keepdim=True) + 1e-12)
    panels = []
    for half in w.chunk(net.columns):
        cols = -(-len(half) // rows)
        k, pad = half.shape[-1], 1
        panel = torch.ones(3, rows * (k + pad) + pad, cols * (k + pad) + pad)
        for i, kernel in enumerate(half):
            r, c = i % rows, i // rows
            panel[:, pad + r * (k + pad) : pad + r * (k + pad) + k, pad + c * (k + pad) : pad + c * (k + pad) + k] = kernel
        panels.append(panel)
    gap = torch.ones(3, panels[0].shape[1], 4)
    grid = torch.cat([p for panel in panels for p in (panel, gap)][:-1], dim=2)
    image = Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def evenly_spaced(n_total: int, n: int) -> list[int]:
    return torch.linspace(0, n_total - 1, min(n, n_total)).long().tolist()


def as_picture(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()  # uint8 (R, R, 3), before mean subtraction


@torch.inference_mode()
def top5_figure(module, datamodule, n_images: int = 6, device: str = "cpu"):
    import matplotlib.pyplot as plt

    dataset, names = datamodule.dataset("val"), datamodule.class_names()
    picks = [dataset[i] for i in evenly_spaced(len(dataset), n_images)]
    x = datamodule.augment.eval_batch(torch.stack([p[0] for p in picks]).to(device), 1)
    probs = module.predict_proba(x).cpu()
    k = min(5, probs.shape[1])
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 4.6), gridspec_kw={"height_ratios": [3, 2]}, squeeze=False)
    for j, ((image, label), p) in enumerate(zip(picks, probs)):
        axes[0, j].imshow(as_picture(image))
        axes[0, j].set_title(names[label][:24], fontsize=8)
        axes[0, j].axis("off")
        top = p.topk(k)
        ax = axes[1, j]
        # The paper's bars: red where the label is the correct one.
        colours = ["tab:red" if c == label else "tab:blue" for c in top.indices.tolist()[::-1]]
        ax.barh(range(k), top.values.numpy()[::-1], color=colours)
        ax.set_yticks(range(k), [names[c][:18] for c in top.indices.tolist()[::-1]], fontsize=7)
        ax.set_xlim(0, 1)
        ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    return fig


@torch.inference_mode()
def nearest_training_images(module, datamodule, queries: torch.Tensor, k: int, max_train: int, device: str = "cpu"):
    """Indices (into the training set) and distances of the k nearest fc7 vectors per query, streamed."""
    q = module.net.forward_features(datamodule.augment.eval_batch(queries.to(device), 1))
    train = datamodule.dataset("train")
    order = evenly_spaced(len(train), max_train) if max_train else list(range(len(train)))
    loader = DataLoader(Subset(train, order), batch_size=datamodule.batch_size, num_workers=datamodule.num_workers)
    best_d = torch.full((len(q), 0), float("inf"), device=device)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=device)
    seen = 0
    for x, _ in loader:
        f = module.net.forward_features(datamodule.augment.eval_batch(x.to(device), 1))
        # Not the matrix-product shortcut: fc7 vectors are long and close, |a|^2 + |b|^2 - 2ab cancels.
        d = torch.cdist(q, f, compute_mode="donot_use_mm_for_euclid_dist")
        idx = torch.tensor(order[seen : seen + len(x)], device=device).expand(len(q), -1)
        best_d, pos = torch.cat([best_d, d], 1).topk(min(k, best_d.shape[1] + d.shape[1]), dim=1, largest=False)
        best_i = torch.cat([best_i, idx], 1).gather(1, pos)
        seen += len(x)
    return best_i.cpu(), best_d.cpu()


def neighbours_figure(module, datamodule, n_queries: int = 4, k: int = 6, max_train: int = 20000, device: str = "cpu"):
    import matplotlib.pyplot as plt

    val, train, names = datamodule.dataset("val"), datamodule.dataset("train"), datamodule.class_names()
    picks = [val[i] for i in evenly_spaced(len(val), n_queries)]
    index, _ = nearest_training_images(module, datamodule, torch.stack([p[0] for p in picks]), k, max_train, device)
    fig, axes = plt.subplots(len(picks), k + 1, figsize=(1.5 * (k + 1), 1.6 * len(picks)), squeeze=False)
    for r, ((image, label), row) in enumerate(zip(picks, index.tolist())):
        axes[r, 0].imshow(as_picture(image))
        axes[r, 0].set_title("query: " + names[label][:14], fontsize=7)
        for c, i in enumerate(row, 1):
            neighbour, y = train[i]
            axes[r, c].imshow(as_picture(neighbour))
            axes[r, c].set_title(names[y][:16], fontsize=6)
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def save_all(module, datamodule, out: Path, loggers=(), max_train: int = 20000) -> list[Path]:
    """Writes the three PNGs into ``out/figures`` and logs them as images to loggers that take images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = "cuda" if torch.cuda.is_available() else "cpu"
    was_training = module.training
    module.to(device).eval()
    datamodule.augment.to(device)
    folder = RunDir(out).figures
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "conv1_filters.png"]
    conv1_grid(module.net).save(paths[0])
    for name, fig in (
        ("top5", top5_figure(module, datamodule, device=device)),
        ("neighbours", neighbours_figure(module, datamodule, max_train=max_train, device=device)),
    ):
        paths.append(folder / f"{name}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    module.train(was_training)
    for logger in loggers:
        log_images(logger, paths)
    return paths


def log_images(logger, paths: list[Path]) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    if isinstance(logger, WandbLogger):
        for p in paths:
            logger.log_image(key=f"figures/{p.stem}", images=[str(p)])
    elif isinstance(logger, TensorBoardLogger):
        for p in paths:
            image = np.asarray(Image.open(p).convert("RGB"))
            logger.experiment.add_image(f"figures/{p.stem}", image, dataformats="HWC")


def save_all_safely(module, datamodule, out: Path, loggers=(), max_train: int = 20000) -> list[Path]:
    """The end-of-run hook: a figure problem is logged, never allowed to fail a finished run."""
    try:
        paths = save_all(module, datamodule, out, loggers, max_train)
        log.info(f"figures: {', '.join(str(p) for p in paths)}")
        return paths
    except Exception as err:
        log.warning(f"figures not made ({type(err).__name__}: {err})")
        return []


class Figures(L.Callback):
    """Figures 3 and 4 from the weights the run reports: after the test (the tested checkpoint) or,
    with ``after_test=false``, after fitting. Both hooks run before Lightning's teardown finalises
    the loggers: TensorBoard's finalize closes its event file, and images logged after it went into
    a new event file that was never closed, which TensorBoard's reader did not see."""

    def __init__(self, *, dirpath: str, enabled: bool, after_test: bool, max_train: int):
        self.dirpath, self.enabled, self.after_test, self.max_train = Path(dirpath), enabled, after_test, max_train
        self.paths: list[Path] | None = None  # None: not drawn (disabled, a fast_dev_run, another rank)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.after_test:
            self.draw(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.after_test:
            self.draw(trainer, pl_module)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled and trainer.is_global_zero and not trainer.fast_dev_run:
            self.paths = save_all_safely(pl_module, trainer.datamodule, self.dirpath, trainer.loggers, self.max_train)


def drawn(trainer: L.Trainer) -> list[str] | None:
    """The PNGs the run's Figures callback wrote (for summary.json), or None when it drew none."""
    for callback in trainer.callbacks:
        if isinstance(callback, Figures) and callback.paths is not None:
            return [str(p) for p in callback.paths]
    return None
