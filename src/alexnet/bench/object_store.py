"""The training loader from the local store vs from an S3 server on 127.0.0.1 (``--s3`` of
``python -m alexnet.bench.data`` and ``python -m alexnet.bench``).

The same prepared store, read by the DataModule's ``train_dataloader`` as a user gets it with
``data.store=<folder>`` (A) and with ``data.store=s3://...`` (B), the store uploaded to moto's S3
server (``s3server``) on a free loopback port. Rounds alternate A B A B after one warm-up round of
each; a round is one epoch of the loader (every image read once), from a DataModule set up anew:
B's with a fresh ``data.cache_dir``, so each of its rounds fetches every shard (a cold cache).

Per core: one process, one thread, no loader workers (``data.num_workers=0``), so the CPU time of
this process is the loader's work, s3fs's client thread included; the server is another process,
not counted. Its wall-clock rate is given beside it. Over loopback this is the protocol's cost
(requests, copies, the cache file), not a cloud number: no network latency or bandwidth limit.
The statistics pass is left out (``data.mean=none``, no PCA noise): it runs once per store and
is cached, and the loader's batches are the same without it (the augmentation follows the copy
to the device).
"""

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from alexnet.bench import s3server
from alexnet.data.store import INDEX, MANIFEST, StoreSource

BUCKET = "alexnet-bench"


def loader_module(store: str, split: str, resize: int, batch_size: int, cache_dir: Path, storage_options: dict):
    """``python train.py data=imagefolder data.store=STORE`` with this run's split and batch, set up."""
    from alexnet.training.config import build_data

    dm = build_data(
        "data=imagefolder",
        root=str(cache_dir / "no-raw-data"),  # absent: the store is not compared with a raw layout
        store=store,
        storage_options=storage_options,
        cache_dir=str(cache_dir),
        train_split=split,
        val_split=split,
        test_split=split,
        resize=resize,
        crop_size=resize,
        batch_size=batch_size,
        num_workers=0,
        mean="none",
        pca_lighting=False,
    )
    dm.setup("fit")
    return dm


def epoch(dm) -> dict:
    """One epoch of the training loader: images, CPU seconds of this process, wall seconds, and
    the shards fetched (a URL store's cache misses)."""
    cpu, wall, images = time.process_time(), time.perf_counter(), 0
    for x, *_ in dm.train_dataloader():
        images += x.shape[0]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    shards = dm.dataset("train").records.shards
    return {"images": images, "cpu_s": cpu, "wall_s": wall, "fetched": shards.misses if shards is not None else 0}


def upload(store: Path, options: dict) -> str:
    """The store's files (those its index names, not the local caches beside them) into the bucket."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    fs.mkdir(BUCKET)
    index = StoreSource(store).index
    shards = [shard for split in index["splits"].values() for shard in split["shards"]]
    for rel in [INDEX, MANIFEST, *shards, *(str(Path(s).with_suffix(".json")) for s in shards)]:
        fs.put_file(str(store / rel), f"{BUCKET}/store/{rel}")
    return f"s3://{BUCKET}/store"


def run(store: Path, split: str, rounds: int, batch_size: int) -> list[dict]:
    """The two rows (per core, medians with min-max over the rounds; wall-clock in the note) and their ratio."""
    try:
        import moto  # noqa: F401 - the server's own package
    except ImportError:
        raise SystemExit("--s3 runs moto's S3 server: install the dev extras (pip install -e '.[dev]')") from None
    threads = torch.get_num_threads()  # put back at the end: the whole-table bench times the model after this
    torch.set_num_threads(1)
    resize = StoreSource(store).resize
    work = Path(tempfile.mkdtemp(prefix="alexnet-bench-s3-"))
    timed: dict[str, list[dict]] = {"local": [], "s3": []}
    try:
        with s3server.serving() as endpoint:
            options = s3server.storage_options(endpoint)
            url = upload(store, options)
            places = {"local": (str(store), {}), "s3": (url, options)}
            for n in range(rounds + 1):  # round 0: the warm-up of each
                for name, (where, opts) in places.items():
                    cache = work / f"{name}-{n}"
                    result = epoch(loader_module(where, split, resize, batch_size, cache, opts))
                    shutil.rmtree(cache, ignore_errors=True)  # the local rounds cache nothing
                    if not result["images"]:
                        raise SystemExit(f"{store}: its '{split}' split holds fewer images than one batch of {batch_size}")
                    if n:
                        timed[name].append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        torch.set_num_threads(threads)
    images = timed["local"][0]["images"]
    rows = []
    for name, label in (
        ("local", f"training loader per core, data.store={store}"),
        ("s3", "training loader per core, data.store=s3:// on 127.0.0.1 (moto), cold shard cache"),
    ):
        per_core = [r["images"] / r["cpu_s"] for r in timed[name]]
        wall = [r["images"] / r["wall_s"] for r in timed[name]]
        rows.append(
            {
                "name": label,
                "images_per_s": statistics.median(per_core),
                "range": (min(per_core), max(per_core)),
                "wall_images_per_s": statistics.median(wall),
                "shards_fetched": [r["fetched"] for r in timed[name]],
                "value": f"wall clock {statistics.median(wall):,.0f} images/s ({min(wall):,.0f}-{max(wall):,.0f})",
            }
        )
    ratios = [b["cpu_s"] / a["cpu_s"] for a, b in zip(timed["local"], timed["s3"])]
    ratio = statistics.median(ratios)
    rows.append(
        {
            "name": "S3 over loopback / local store, CPU per image (median of per-round ratios)",
            "cpu_ratio": ratio,
            "value": f"{ratio:.2f}x (rounds {min(ratios):.2f}x to {max(ratios):.2f}x); {images} images a round",
        }
    )
    return rows


def title(rounds: int, batch_size: int) -> str:
    return (
        f"loader from the local store vs from S3 on 127.0.0.1, images per CPU-second of one core, batch {batch_size}, "
        f"median of {rounds} alternating rounds of one epoch; loopback: the protocol's cost, not a cloud number"
    )
