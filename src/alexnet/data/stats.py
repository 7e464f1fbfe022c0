"""Training-set statistics: the mean image (section 2) and the RGB covariance's
eigen-decomposition for PCA colour noise (section 4.1). Computed once, cached next to the data."""

import hashlib
import os
from pathlib import Path

import torch
from rich.progress import track
from torch.utils.data import DataLoader, Dataset, Subset


def stats_path(cache_dir: Path, split: str, resize: int, max_images: int, ids: list[str]) -> Path:
    # The cache key covers what the numbers depend on: which images, at which size.
    digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12]
    return Path(cache_dir) / f".stats_{split}_{resize}px_{max_images}_{digest}.pt"


def compute_stats(dataset: Dataset, max_images: int, num_workers: int = 0, collate_fn=None) -> dict[str, torch.Tensor]:
    """Mean image (3, R, R) on the 0..255 scale, and eigval/eigvec of the 3x3 RGB covariance
    on the 0..1 scale (the convention of the published ImageNet constants).

    Uses an evenly spaced subset of at most ``max_images`` images (all of them when 0).
    """
    n = len(dataset)
    if max_images and n > max_images:
        dataset = Subset(dataset, torch.linspace(0, n - 1, max_images).long().tolist())
    # Its own generator: iterating a loader draws a seed, which must not shift the run's global RNG.
    loader = DataLoader(dataset, batch_size=256, num_workers=num_workers, generator=torch.Generator(), collate_fn=collate_fn)
    total = None
    moments = torch.zeros(3, 3, dtype=torch.float64)
    colour_sum = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for batch in track(loader, description="training-set mean and RGB covariance", transient=True):
        x = batch[0].double()
        total = x.sum(0) if total is None else total + x.sum(0)
        flat = x.permute(1, 0, 2, 3).reshape(3, -1) / 255.0
        moments += flat @ flat.T
        colour_sum += flat.sum(1)
        pixels += flat.shape[1]
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


def load_or_compute(dataset, ids: list[str], cache_dir: Path, split: str, resize: int, max_images: int, num_workers: int = 0,
                    collate_fn=None) -> dict:
    """``ids``: a stable name per image (relative path, archive member), the cache key."""
    path = stats_path(cache_dir, split, resize, max_images, ids)
    if path.exists():
        return torch.load(path)
    stats = compute_stats(dataset, max_images, num_workers, collate_fn)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: DDP ranks may compute it at once
    torch.save(stats, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written cache
    return stats
