"""Training-set statistics: the mean image (section 2) and the RGB covariance's
eigen-decomposition for PCA colour noise (section 4.1). Computed once, then cached (``cache``).

The cache is keyed by what the numbers depend on: the ordered class names, the training
files with their sizes and modification times (``fingerprint``), the image size and how many
images were sampled. The class names are saved in the cache too. A cache that is used is logged
with its age (files rewritten with their modification times kept, cp -p, would still match its
key); one that cannot be read is named and computed again.
"""

import hashlib
import logging
import time

import numpy as np
import torch
from rich.progress import track
from torch.utils.data import DataLoader, Dataset, Subset

from alexnet.data.cache import CacheFolder
from alexnet.data.unreadable import UnreadableCounter

log = logging.getLogger(__name__)


def stats_name(split: str, resize: int, max_images: int, classes: list[str], files_fingerprint: str) -> str:
    digest = hashlib.sha1("\n".join([*classes, files_fingerprint]).encode()).hexdigest()[:12]
    return f".stats_{split}_{resize}px_{max_images}_{digest}.pt"


def age(seconds: float) -> str:
    """A duration as a person says it: 40 s, 12 min, 5 h, 3 days."""
    if seconds < 60:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def evenly_spaced(n: int, max_images: int) -> list[int] | None:
    """At most ``max_images`` of ``n`` indices, evenly spaced; None: all of them (0, or n is fewer)."""
    return torch.linspace(0, n - 1, max_images).long().tolist() if max_images and n > max_images else None


def whole_shards(file_of: np.ndarray, max_images: int) -> list[int] | None:
    """At most ``max_images`` indices, the images of evenly spaced whole shards (``file_of``: each
    image's shard). For a store read over the network: evenly spaced images would touch every shard
    (ImageNet's 10,000 of 1.28 million: 8 in each of its 1,282), fetching the whole split before the
    first step. ``prepare`` shuffles the training images before cutting shards, so a shard is a
    random sample of the split and a few whole shards are as good a sample as spread-out images."""
    if not max_images or len(file_of) <= max_images:
        return None
    shards, counts = np.unique(file_of, return_counts=True)
    needed = min(len(shards), -(-max_images * len(shards) // len(file_of)) + 1)
    chosen = shards[np.linspace(0, len(shards) - 1, needed).round().astype(int)]
    return np.flatnonzero(np.isin(file_of, chosen))[:max_images].tolist()


def compute_stats(
    dataset: Dataset,
    max_images: int,
    num_workers: int = 0,
    collate_fn=None,
    unreadable: UnreadableCounter | None = None,
    indices: list[int] | None = None,
) -> dict[str, torch.Tensor]:
    """Mean image (3, R, R) on the 0..255 scale, and eigval/eigvec of the 3x3 RGB covariance
    on the 0..1 scale (the convention of the published ImageNet constants).

    Uses ``indices``, else an evenly spaced subset of at most ``max_images`` images (all of them
    when 0). A dataset that skips unreadable images (``SkipUnreadable``) reports them to ``unreadable``.
    """
    indices = indices if indices is not None else evenly_spaced(len(dataset), max_images)
    if indices is not None:
        dataset = Subset(dataset, indices)
    # Its own generator: iterating a loader draws a seed, which must not shift the run's global RNG.
    loader = DataLoader(dataset, batch_size=256, num_workers=num_workers, generator=torch.Generator(), collate_fn=collate_fn)
    total = None
    moments = torch.zeros(3, 3, dtype=torch.float64)
    colour_sum = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for batch in track(loader, description="training-set mean and RGB covariance", transient=True):
        if unreadable is not None and len(batch) == 3:
            unreadable.add("the statistics pass", batch[2])
        x = batch[0].double()
        total = x.sum(0) if total is None else total + x.sum(0)
        flat = x.permute(1, 0, 2, 3).reshape(3, -1) / 255.0
        moments += flat @ flat.T
        colour_sum += flat.sum(1)
        pixels += flat.shape[1]
    if unreadable is not None:
        unreadable.report()
    count = len(dataset)
    mean_rgb = colour_sum / pixels
    cov = moments / pixels - torch.outer(mean_rgb, mean_rgb)
    eigval, eigvec = torch.linalg.eigh(cov)
    order = eigval.argsort(descending=True)
    return {
        "mean_image": (total / count).float().contiguous(),  # the batches may be channels-last
        "eigval": eigval[order].float(),
        "eigvec": eigvec[:, order].float(),
        "images": torch.tensor(count),
    }


def load_or_compute(
    dataset: Dataset,
    classes: list[str],
    files_fingerprint: str,
    cache: CacheFolder,
    split: str,
    resize: int,
    max_images: int,
    num_workers: int = 0,
    collate_fn=None,
    unreadable: UnreadableCounter | None = None,
    indices: list[int] | None = None,
) -> dict:
    """The cached statistics of ``dataset`` (``classes`` and ``files_fingerprint`` identify it), else
    computed (over ``indices`` where given: ``compute_stats``) and cached."""
    name = stats_name(split, resize, max_images, classes, files_fingerprint)
    for path in cache.existing(name):
        try:
            stats = torch.load(path)
        except Exception as err:  # cut short or overwritten: a cache, so computed again (and rewritten)
            log.warning("%s: unreadable training-set statistics cache (%s): computing them again", path, first_line(err))
            continue
        if isinstance(stats, dict) and stats.get("classes") == classes:
            log.info(
                "training-set statistics (mean image, RGB eigenvectors) from the cache %s, written %s ago; its key is the "
                "'%s' files' names, sizes and modification times, the classes, %dpx and %s images: pixels changed with "
                "the modification times kept (cp -p, rsync -t) would still use it; delete it to compute them again",
                path,
                age(time.time() - path.stat().st_mtime),
                split,
                resize,
                max_images or "all",
            )
            return stats
        log.warning("%s: a training-set statistics cache of other classes: computing them again", path)
    stats = compute_stats(dataset, max_images, num_workers, collate_fn, unreadable, indices)
    stats["classes"] = list(classes)
    cache.write(name, lambda tmp: torch.save(stats, tmp), "the training-set statistics")
    return stats
