"""python -m alexnet.data.prepare SRC OUT: convert a dataset once into the store that training reads.

SRC is the official ILSVRC archives + devkit, the extracted ``train/<wnid>/`` ``val/<wnid>/``
layout, or any folder-per-class set. Every image is decoded to 8-bit RGB by the rule of
``alexnet.data.decode`` (the index counts each conversion: CMYK, grayscale, 16-bit, alpha, the
first frame of an animation, ...), its shorter side rescaled to 256 and its central 256x256 patch (section 2: the
paper's own down-sampling, done once instead of every epoch) stored as a JPEG in WebDataset
tar shards (see ``alexnet.data.store``).

OUT may be a URL (``s3://bucket/prefix``, any fsspec URL; ``--storage-options`` as
``data.storage_options``): each shard is uploaded as it completes, through a local staging folder
that holds at most one shard per worker, and ``index.json`` last (``alexnet.data.upload``).

Resumable: a shard is written under a temporary name, renamed when complete, and only then
gets its ``.json`` done marker; a rerun skips the marked shards and rewrites the others, so
an interruption never duplicates or corrupts (Ctrl+C or SIGTERM: one line, exit 130 / 143,
the finished shards kept). The plan (which image goes in which shard) is
fixed by the source listing and the options, and a rerun with a different plan is refused.
Unreadable images (empty, truncated, not images) are listed in ``unreadable.tsv`` and counted,
in every split. The index records the ordered classes and, per split, the fingerprint of the
source files (names and sizes), against which training compares ``data.root``.
"""

# ruff: noqa: E402 (the imports follow the process tuning)
if __name__ == "__main__":  # an entry point: tune the process before torch loads (alexnet.host)
    from alexnet.host import tune_process

    tune_process()

import argparse
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torchvision.io import encode_jpeg

from alexnet.data import fingerprint as files_fingerprint
from alexnet.data.decode import UnreadableImage, decode, describe
from alexnet.data.records import ByteReader, Records
from alexnet.data.remote import is_url, local_folder
from alexnet.data.sources import class_difference, open_source
from alexnet.data.store import FORMAT, INDEX, MANIFEST, VERSION
from alexnet.data.upload import UrlOut, upload_shard
from alexnet.data.verify import verify_shard, verify_store
from alexnet.errors import ConfigError, StoreUnreachable, traceback_wanted
from alexnet.exit_codes import ExitCode, stopped_by

PLAN = "prepare.json"


def encode(data: bytes, resize: int, quality: int) -> bytes:
    """An image file as the store keeps it: decoded by the one rule (``decode``; EXIF orientation
    not applied, as the loaders read the raw layout), its central square, a JPEG."""
    return encode_jpeg(decode(data, resize), quality=quality).numpy().tobytes()


def write_shard(task: dict) -> dict:
    """Write one shard: tar under a temporary name, rename, then the .json done marker; to a URL,
    then upload both (``upload``) and return the marker."""
    tar = Path(task["tar"])
    tmp = tar.with_name(f"{tar.name}.tmp.{os.getpid()}")
    reader = ByteReader()
    members, unreadable, converted = [], [], Counter()
    with open(tmp, "wb") as f:
        sink = wds.TarWriter(f, mtime=0)  # mtime 0: the same images give the same bytes
        for key, (image_id, file, offset, size, label) in task["items"]:
            try:
                data = reader.read(file, offset, size)
                jpeg = encode(data, task["resize"], task["quality"])
            except (OSError, UnreadableImage) as err:
                unreadable.append([image_id, str(err)])
                continue
            kind = describe(data)
            if kind != "JPEG RGB":
                converted[kind] += 1
            sink.write({"__key__": key, "cls": str(label).encode(), "jpg": jpeg})
            members.append({"key": key, "id": image_id, "label": label})
        sink.close()
        f.flush()
        os.fsync(f.fileno())
    reader.close()
    os.replace(tmp, tar)
    offsets = member_offsets(tar)
    for m in members:
        m["offset"], m["size"] = offsets[f"{m['key']}.jpg"]
    marker = {"tar_bytes": tar.stat().st_size, "members": members, "unreadable": unreadable, "converted": dict(converted)}
    write_json(tar.with_suffix(".json"), marker)
    if "upload" not in task:
        return {"split": task["split"], "done": len(task["items"])}
    verify_shard(tar, marker)
    upload_shard(task["upload"], tar, task["rel"], marker)
    return {"split": task["split"], "done": len(task["items"]), "rel": task["rel"], "marker": marker}


def member_offsets(tar: Path) -> dict[str, tuple[int, int]]:
    import tarfile

    with tarfile.open(tar, "r:") as t:
        return {m.name: (m.offset_data, m.size) for m in t if m.isfile()}


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def plan_split(split: str, records: Records, out: Path, shard_size: int, seed: int) -> list[dict]:
    """Fixed assignment of images to shards. Train is shuffled once (seeded) so that a streaming
    WebDataset reader, which only shuffles within a buffer, sees mixed classes in every shard."""
    order = np.random.default_rng(seed).permutation(len(records)) if split == "train" else np.arange(len(records))
    shards = []
    for n, start in enumerate(range(0, len(order), shard_size)):
        chunk = order[start : start + shard_size]
        items = [(f"{int(i):08d}", records.item(int(i))) for i in chunk]
        rel = f"{split}/shard-{n:06d}.tar"
        shards.append({"split": split, "rel": rel, "tar": str(out / rel), "items": items})
    return shards


def fingerprint(shards: list[dict], options: dict, dest: str | None = None) -> str:
    """The plan's: the options and every shard's place and images. ``dest``: the URL the shards
    go to (the staging folder they pass through may change between runs)."""
    h = hashlib.sha1(json.dumps(options, sort_keys=True).encode())
    for s in shards:
        h.update((f"{dest}/{s['rel']}" if dest else s["tar"]).encode())
        for key, (image_id, _, _, _, label) in s["items"]:
            h.update(f"{key} {image_id} {label}\n".encode())
    return h.hexdigest()


def check_plan(out: Path, digest: str, src: Path) -> None:
    path = out / PLAN
    if path.exists():
        previous = json.loads(path.read_text())["fingerprint"]
        if previous != digest:
            raise SystemExit(
                f"{out} holds a store prepared from another source or with other options (its {PLAN} differs): "
                f"choose a new OUT folder or delete {out}"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(path, {"fingerprint": digest, "source": str(src)})


def remove_leftovers(out: Path, splits: list[str]) -> None:
    """Temporary files of an interrupted run (their shards have no done marker and are redone)."""
    for split in splits:
        for tmp in (out / split).glob("*.tmp.*"):
            tmp.unlink(missing_ok=True)


def run_pool(pending: list[dict], workers: int, console: Console) -> list[dict]:
    total = sum(len(s["items"]) for s in pending)
    columns = (
        TextColumn("[bold]prepare"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    # fork, before the progress bar starts its thread: no thread is copied into a worker, and
    # a worker starts at once (spawn re-imports torch in each: 5-10 s on this 2-core machine).
    pool = ShardWriters(workers) if workers > 1 else None
    handlers = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    done = []
    try:
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("images", total=total)
            results = pool.write(pending) if pool else map(write_shard, pending)
            for result in results:
                progress.advance(bar, result["done"])
                done.append(result)
    finally:
        # A second Ctrl+C or SIGTERM while the workers are ended (each worker of a process group
        # gets one too) must not cut this cleanup short: the stop is under way already.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if pool:
            pool.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return done


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """SIGINT or SIGTERM while shards were written: the finished ones are kept (a rerun goes on from them)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop(signum, frame) -> None:
    raise Stopped(signum)


class ShardWriters:
    """Worker processes that write shards, each with a pipe of its own.

    Not multiprocessing.Pool: its workers share one task queue and its lock, and a worker ended
    by a signal while it held that lock (Ctrl+C or SIGTERM reach the whole process group) left
    the pool's shutdown waiting forever; an orphaned worker printed BrokenPipeError tracebacks.
    Here a worker ignores SIGINT and ends quietly on SIGTERM, and the main process alone decides:
    on a stop it kills the workers (a shard cut short has no done marker: a rerun writes it again).
    """

    def __init__(self, workers: int):
        context = multiprocessing.get_context("fork")
        self.workers = []
        for _ in range(workers):
            ours, theirs = context.Pipe()
            process = context.Process(target=serve, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self.workers.append((process, ours))

    def write(self, tasks: list[dict]):
        """write_shard of every task, in the workers; the results as they come."""
        todo, idle, busy = list(tasks), list(self.workers), {}
        while todo or busy:
            while todo and idle:
                process, pipe = idle.pop()
                task = todo.pop(0)
                try:
                    pipe.send(task)
                except OSError:  # it has ended (BrokenPipeError)
                    raise ended(process, task) from None
                busy[pipe] = (process, task)
            ready = multiprocessing.connection.wait([*busy, *(process.sentinel for process, _ in busy.values())])
            for pipe, (process, task) in list(busy.items()):
                if pipe not in ready and process.sentinel not in ready:
                    continue
                try:
                    ok, result = pipe.recv()
                except EOFError:  # it ended without a result
                    raise ended(process, task) from None
                if not ok:
                    raise result
                del busy[pipe]
                idle.append((process, pipe))
                yield result

    def close(self) -> None:
        for process, pipe in self.workers:
            pipe.close()
            process.kill()
        for process, _ in self.workers:
            process.join()


def ended(process, task: dict) -> Exception:
    """What a worker's end means: the process group's SIGINT or SIGTERM (the main process stops
    too), else a fault (the OOM killer, a crash), named with its shard."""
    process.join()
    if process.exitcode is not None and -process.exitcode in STOP_SIGNALS:
        return Stopped(-process.exitcode)
    return RuntimeError(
        f"a prepare worker ended (exit code {process.exitcode}) while writing {task['tar']}: "
        "the same command goes on from the finished shards"
    )


def serve(pipe) -> None:
    """A worker: write the shards it is sent until its pipe closes. Stopping is the main process's
    (Ctrl+C reaches the whole process group: ignored here); SIGTERM ends it without a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)
    while True:
        try:
            task = pipe.recv()
        except EOFError:
            return
        try:
            reply = (True, write_shard(task))
        except Exception as err:  # raised in the main process, as Pool did
            reply = (False, err)
        pipe.send(reply)


def prepare(
    src: Path,
    out: Path | str,
    splits: list[str] | None = None,
    workers: int | None = None,
    shard_size: int = 1000,
    resize: int = 256,
    quality: int = 90,
    seed: int = 0,
    console: Console | None = None,
    storage_options: dict | None = None,
    staging: Path | None = None,
) -> dict:
    """Prepares SRC into OUT: a folder, or a URL (``storage_options`` for its filesystem; the
    shards pass through ``staging``, a temporary folder when None)."""
    src = Path(src)
    console = console or Console()
    dest = UrlOut(out, storage_options or {}, staging) if is_url(out) else None
    if dest is None and (storage_options or staging):
        raise ConfigError(f"prepare OUT: {out} is a folder: --storage-options and --staging are for a URL")
    listing = dest.listing() if dest else {}  # before any work: a missing bucket or a refusal is said now
    out = Path(out) if dest is None else None
    # A URL's source caches (the archives' member indexes) go to the per-user folder named after it.
    source = open_source(src, cache_dir=out / ".cache" if dest is None else local_folder(dest.url, None) / "source")
    if source.kind == "store":
        raise ConfigError(f"{src} is already a prepared store")
    splits = splits or source.splits()
    records = {split: source.records(split) for split in splits}
    first = "train" if "train" in records else splits[0]
    classes = records[first].classes
    for split, r in records.items():
        if r.classes != classes:
            raise ConfigError(
                f"{src}: its '{split}' split has other classes than its '{first}' split: {class_difference(classes, r.classes)}"
            )
    shards = [
        dict(s, resize=resize, quality=quality)
        for split in splits
        for s in plan_split(split, records[split], out or dest.staging, shard_size, seed)
    ]
    options = {"resize": resize, "quality": quality, "shard_size": shard_size, "seed": seed, "splits": splits}
    if dest is None:
        check_plan(out, fingerprint(shards, options), src)
        for split in splits:
            (out / split).mkdir(parents=True, exist_ok=True)
        remove_leftovers(out, splits)
        pending = [s for s in shards if not Path(s["tar"]).with_suffix(".json").exists()]
    else:
        dest.check_plan(PLAN, fingerprint(shards, options, dest.url), src, listing)
        uploaded = dest.done(shards, listing)
        pending = [dict(s, upload=dest.remote) for s in shards if s["rel"] not in uploaded]
    console.print(
        f"{src} ({source.kind}): {sum(len(r) for r in records.values())} images in {', '.join(splits)}; "
        f"{len(shards) - len(pending)} of {len(shards)} shards already done"
    )
    planned = {split: len(r) for split, r in records.items()}
    if dest is None:
        run_pool(pending, workers or os.cpu_count() or 1, console)
        summary = verify_store(out, splits, planned, classes, shard_size)
        write_manifest(out, splits, summary)
    else:
        dest.make_staging(splits)
        try:
            results = run_pool(pending, workers or os.cpu_count() or 1, console)
        finally:
            dest.clear_staging(splits)
        markers = {**uploaded, **{r["rel"]: r["marker"] for r in results}}
        summary = dest.verify(splits, planned, classes, shard_size, markers)
        dest.write_text(MANIFEST, manifest_text(splits, summary))
    index = {
        "format": FORMAT,
        "version": VERSION,
        "resize": resize,
        "quality": quality,
        "source": str(src),
        "source_kind": source.kind,
        "classes": classes,
        "names": source.names_of(classes),
        "splits": {
            split: {**{k: v for k, v in s.items() if k != "unreadable_list"}, "source": source_files(records[split], src)}
            for split, s in summary.items()
        },
    }
    # last: its presence means complete and verified
    if dest is None:
        write_json(out / INDEX, index)
    else:
        dest.write_text(INDEX, json.dumps(index))
    return index


def source_files(records: Records, src: Path) -> dict:
    """What this split was prepared from: its files (images, or the archive) and their sizes."""
    return {"files": len(set(records.files)), "fingerprint": files_fingerprint.listing(records.files, src, mtimes=False)}


def manifest_text(splits: list[str], summary: dict) -> str:
    lines = ["split\timage\treason"]
    for split in splits:
        lines += [f"{split}\t{image_id}\t{reason}" for image_id, reason in summary[split]["unreadable_list"]]
    return "\n".join(lines) + "\n"


def write_manifest(out: Path, splits: list[str], summary: dict) -> None:
    tmp = out / f"{MANIFEST}.tmp"
    tmp.write_text(manifest_text(splits, summary))
    tmp.replace(out / MANIFEST)


def print_summary(index: dict, out: str, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"store {out} (verified)")
    for column in ("split", "images", "classes", "per class", "unreadable", "converted to RGB JPEG"):
        table.add_column(column, justify="left" if column in ("split", "converted to RGB JPEG") else "right")
    for split, s in index["splits"].items():
        per_class = [c for c in s["per_class"] if c]
        converted = ", ".join(f"{k}: {v}" for k, v in sorted(s["converted"].items())) or "-"
        span = f"{min(per_class)}..{max(per_class)}" if per_class else "-"
        table.add_row(split, str(s["images"]), str(len(per_class)), span, str(s["unreadable"]), converted)
    console.print(table)
    bad = sum(s["unreadable"] for s in index["splits"].values())
    if bad:
        console.print(f"[yellow]{bad} unreadable images left out, listed in {out.rstrip('/')}/{MANIFEST}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alexnet.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="ILSVRC archives + devkit, or a folder with <split>/<class>/ images")
    parser.add_argument(
        "out",
        help="the store folder, or a URL (s3://bucket/prefix, any fsspec URL) to upload to; rerun with the same OUT to resume",
    )
    parser.add_argument("--splits", nargs="+", help="default: every split the source has")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU core)")
    parser.add_argument("--shard-size", type=int, default=1000, help="images per shard (~25 MB at 256px)")
    parser.add_argument("--resize", type=int, default=256, help="side of the stored central square (section 2: 256)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the stored images")
    parser.add_argument(
        "--storage-options",
        help="a URL OUT: its fsspec filesystem's options as JSON, as data.storage_options, e.g. '{\"client_kwargs\": "
        '{"endpoint_url": "http://127.0.0.1:9000"}}\'',
    )
    parser.add_argument(
        "--staging", type=Path, help="a URL OUT: the local folder its shards pass through (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    console = Console()
    try:
        index = prepare(
            args.src,
            args.out,
            args.splits,
            args.workers,
            args.shard_size,
            args.resize,
            args.quality,
            console=console,
            storage_options=json_object(args.storage_options, "--storage-options"),
            staging=args.staging,
        )
    except ConfigError as err:
        if traceback_wanted():
            raise
        print(f"config error: {err}", file=sys.stderr, flush=True)
        sys.exit(ExitCode.CONFIG_ERROR)
    except (FileNotFoundError, ValueError) as err:
        if traceback_wanted():
            raise
        console.print(f"[red]prepare: {err}")
        sys.exit(ExitCode.CONFIG_ERROR)
    except Stopped as stopped:
        console.print(f"[yellow]prepare: stopped by {stopped}: the finished shards are kept; the same command goes on from them")
        sys.exit(stopped_by(stopped.signum))
    except StoreUnreachable as err:
        console.print(f"[red]prepare: {err}: the uploaded shards are kept; the same command goes on from them")
        sys.exit(ExitCode.FAILED)
    print_summary(index, args.out, console)


def json_object(text: str | None, option: str) -> dict | None:
    if text is None:
        return None
    try:
        found = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"prepare {option}: not JSON ({err}): {text}") from None
    if not isinstance(found, dict):
        raise ConfigError(f"prepare {option}: a JSON object is expected, got a {type(found).__name__}: {text}")
    return found


if __name__ == "__main__":
    main()
