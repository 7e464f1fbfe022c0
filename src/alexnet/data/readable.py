"""Every image of the evaluation splits (val, test) decoded once at the start of a run, before
the first training step.

Validation and test never skip an image (``datasets``): one that does not decode stops the run.
Found by the validation loop, it would have cost a whole training epoch first; found here, it
costs the decode of the split, once. The decode is the loaders' own (``ImageRecords.decode_into``,
``alexnet.data.decode``), in a thread pool (libjpeg-turbo and Pillow release the GIL).

Which images decoded is cached per split beside the content digests (``CacheFolder``,
``.decoded_ok_<split>.tsv``), keyed by the image's id and the size and modification time of the
file holding it (its own file in a folder layout, the split's tar for the ILSVRC archives), and by
the decoders' versions (its header): a rerun decodes only new or changed images. One that fails is
never cached: it is decoded again on the next run, until it is fixed or removed.

Folder layouts and the ILSVRC archives. A prepared store's images were all decoded by ``prepare``,
which left out the unreadable ones.
"""

import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import PIL
import simplejpeg
import torchvision

from alexnet.data.batches import image_memory
from alexnet.data.cache import CacheFolder
from alexnet.data.datasets import ImageRecords
from alexnet.data.decode import MAX_PIXELS, UnreadableImage
from alexnet.data.sources import ArchiveSource, FolderSource
from alexnet.errors import ConfigError

log = logging.getLogger(__name__)

# A cache written by other decoders says nothing about these: the header must match to be read.
DECODERS = (
    f"torchvision {torchvision.__version__}, simplejpeg {simplejpeg.__version__}, Pillow {PIL.__version__}, "
    f"{MAX_PIXELS} pixels at most"
)
HEADER = f"# path\tsize\tmtime_ns\tdecoded by {DECODERS}"
PROGRESS_SECONDS = 10.0  # between progress lines on a large split
LOGGED = 10  # unreadable files logged by name; the error names the first


def cache_name(split: str) -> str:
    return f".decoded_ok_{split}.tsv"


@dataclass
class Checked:
    split: str
    images: int
    decoded: int  # of which decoded now (the rest unchanged since a run that decoded them)
    seconds: float


def load(cache: CacheFolder, split: str) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of the files a run decoded; {} for another decoder's cache."""
    for path in cache.existing(cache_name(split)):
        try:
            lines = path.read_text().splitlines()
            if not lines or lines[0] != HEADER:
                continue
            return {rel: (int(size), int(mtime)) for rel, size, mtime in (line.split("\t") for line in lines[1:])}
        except (OSError, UnicodeDecodeError, ValueError) as err:
            log.warning("%s: unreadable (%s): its images are decoded again", path, err)
    return {}


def check_split(source: FolderSource | ArchiveSource, split: str, resize: int, threads: int) -> Checked:
    """Decodes every image of ``split`` not decoded before; ``ConfigError`` naming the first that
    does not decode (all of them are decoded first, the first ``LOGGED`` logged by name)."""
    start = time.perf_counter()
    dataset = ImageRecords(source.records(split), resize)
    ids, records = dataset.records.ids, dataset.records
    cached, passed, todo, failed = load(source.cache, split), {}, [], []
    for i, rel in enumerate(ids):
        path = records.files[records.file_of[i]]
        try:
            st = os.stat(path)
        except OSError as err:  # a broken link: the validation loop could not read it either
            failed.append((i, f"{path}: {err.strerror}"))
            continue
        key = (st.st_size, st.st_mtime_ns)
        if cached.get(rel) == key:
            passed[rel] = key
        else:
            todo.append((i, key))
    newly = 0
    for i, key, error in decoded(dataset, todo, split, threads, start):
        if error is None:
            passed[ids[i]] = key
            newly += 1
        else:
            failed.append((i, error))
    if newly:  # written even when some failed: once they are fixed, only they are decoded again
        kept = [(rel, size, mtime) for rel, (size, mtime) in passed.items() if "\t" not in rel and "\n" not in rel]
        lines = [HEADER] + [f"{rel}\t{size}\t{mtime}" for rel, size, mtime in kept]  # such a name: decoded every run
        text = "\n".join(lines) + "\n"
        source.cache.write(cache_name(split), lambda tmp: tmp.write_text(text), f"the '{split}' images that decode")
    if failed:
        failed.sort()
        for _, error in failed[:LOGGED]:
            log.error("data check: unreadable '%s' image: %s", split, error)
        others = f"; {len(failed) - 1} more unreadable in it, logged above" if len(failed) > 1 else ""
        raise ConfigError(
            f"data.root: {failed[0][1]} (an image of the '{split}' split, which is never skipped{others}: fix or remove it)"
        )
    return Checked(split, len(ids), len(todo), time.perf_counter() - start)


def decoded(dataset: ImageRecords, todo: list, split: str, threads: int, start: float) -> Iterator[tuple[int, tuple, str | None]]:
    """(index, key, None or the error) for each of ``todo``, a progress line every ``PROGRESS_SECONDS``."""
    if not todo:
        return
    memory = threading.local()  # one image's memory per thread, reused

    def decode(i: int) -> str | None:
        if not hasattr(memory, "x"):
            memory.x = image_memory(dataset.resize)
        try:
            dataset.decode_into(i, memory.x)
        except UnreadableImage as err:  # already names the file
            return str(err)
        return None

    shown = start
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="decode-check") as pool:
        futures = {pool.submit(decode, i): (i, key) for i, key in todo}
        for n, future in enumerate(as_completed(futures), 1):
            i, key = futures[future]
            yield i, key, future.result()
            now = time.perf_counter()
            if now - shown > PROGRESS_SECONDS:
                log.info("data check: decoded %d of %d '%s' images (%.0f s)", n, len(todo), split, now - start)
                shown = now


def check_evaluation_splits(
    source: FolderSource | ArchiveSource, splits: list[str], resize: int, threads: int, report: bool
) -> list[Checked]:
    """``check_split`` on each of ``splits`` (val, test: once when they are one), its cost logged
    where ``report`` (rank zero: every rank checks, one says so)."""
    found = [check_split(source, split, resize, threads) for split in dict.fromkeys(splits)]
    for checked in found if report else []:
        if checked.decoded:
            unchanged = checked.images - checked.decoded
            earlier = f", {unchanged} unchanged since an earlier run" if unchanged else ""
            log.info(
                "data check: decoded %d '%s' images in %.1f s%s (cached for the next run)",
                checked.decoded,
                checked.split,
                checked.seconds,
                earlier,
            )
        else:
            images, split, seconds = checked.images, checked.split, checked.seconds
            log.info("data check: the %d '%s' images all decoded on an earlier run (%.2f s)", images, split, seconds)
    return found
