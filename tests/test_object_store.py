"""data.store=s3://...: a prepared store streamed from object storage (alexnet.data.remote).

The S3 server is moto's standalone server (alexnet.bench.s3server), started as a process on a free
port and stopped by its PID; dummy credentials come from the environment, as botocore reads real ones. A real
cloud bucket is not tested."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import numpy as np
import pytest
import torch
from builders import data_module, data_node
from conftest import ROOT, fixture_dir, run_train, train_in_process
from hydra.utils import instantiate
from seen_images import digest

from alexnet.bench.s3server import CREDENTIALS, free_port, stop
from alexnet.bench.s3server import start as start_moto
from alexnet.data.batches import collate
from alexnet.data.datasets import ImageRecords, SkipUnreadable
from alexnet.data.records import Records
from alexnet.data.remote import Remote, ShardCache
from alexnet.data.stats import whole_shards
from alexnet.data.stream import ShardStream, StreamLoader, buffer_shuffle, epoch_order
from alexnet.errors import ConfigError, RunStopped, StoreUnreachable
from alexnet.training.config import build

pytest.importorskip("s3fs")
pytest.importorskip("moto")

BUCKET = "alexnet-test"
SPEC = {"train_per_class": 3, "val_per_class": 2}  # 30 + 20 images; 4 per shard: 8 + 5 shards


@pytest.fixture(scope="module")
def server(request):
    """The moto server's endpoint; the store (synthetic set, 76 px, 4 images a shard) uploaded to it."""
    from alexnet.data import synthetic
    from alexnet.data.prepare import prepare

    tmp = fixture_dir(request, "objstore")
    root = tmp / "synthetic"
    synthetic.generate(root, image_size=76, seed=0, **SPEC)
    prepare(root, tmp / "store", workers=1, resize=76, shard_size=4)
    port = free_port()
    proc = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for key, value in CREDENTIALS.items():
            env.setenv(key, value)
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
        fs.mkdir(BUCKET)
        fs.put(str(tmp / "store"), f"{BUCKET}/store", recursive=True)
        yield {"endpoint": endpoint, "root": root, "store": tmp / "store", "port": port, "tmp": tmp}
    stop(proc)


def options(server) -> dict:
    return {"client_kwargs": {"endpoint_url": server["endpoint"]}}


def module(server, store: str, **overrides):
    return data_module(
        server["root"],
        "synthetic",
        store=store,
        storage_options=options(server),
        **SPEC,
        **{"num_workers": 0, "batch_size": 8, **overrides},
    )


def test_a_store_read_from_s3_gives_the_local_stores_records_and_batches(server, tmp_path):
    # data.stream=false: the map-style reader, whose exact shuffle the local store's batches repeat
    # (streamed, the epoch's order is another: test_streamed_batches_are_the_local_stores_images)
    s3 = module(server, f"s3://{BUCKET}/store", cache_dir=str(tmp_path / "cache"), stream=False)
    local = module(server, str(server["store"]), cache_dir=str(tmp_path / "local-cache"))
    s3.setup("fit"), local.setup("fit")
    assert s3.source.root == f"s3://{BUCKET}/store" and s3.train_fingerprint() == local.train_fingerprint()
    for split in ("train", "val"):
        a, b = s3.datasets[split].records, local.datasets[split].records
        assert a.ids == b.ids and a.labels.tolist() == b.labels.tolist() and a.offsets.tolist() == b.offsets.tolist()
        assert [f.rsplit("/store/", 1)[1] for f in a.files] == [f.rsplit("/store/", 1)[1] for f in b.files]
    torch.manual_seed(0)
    from_s3 = [x for x, *_ in s3.train_dataloader()]
    torch.manual_seed(0)
    from_disk = [x for x, *_ in local.train_dataloader()]
    assert len(from_s3) == 3 and all(torch.equal(a, b) for a, b in zip(from_s3, from_disk))  # same shuffle, same pixels
    shards = s3.datasets["train"].records.shards
    # the statistics pass fetched the 8 training shards once; the epoch after it found them all cached
    assert shards.misses == 8 and shards.hits == (30 - 8) + 3 * 8 and shards.fetched_bytes == shards.used()


def from_s3(server, tmp_path) -> list[str]:
    return [
        f"data.root={server['root']}",
        f"data.store=s3://{BUCKET}/store",
        f"+data.storage_options.client_kwargs.endpoint_url={server['endpoint']}",
        f"data.cache_dir={tmp_path}/cache",
        *[f"data.{k}={v}" for k, v in SPEC.items()],
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "test=false",
        "data.batch_size=8",
        "data.num_workers=0",
        "logger=none",
    ]


def test_training_reads_the_store_from_s3(server, tmp_path):
    done = train_in_process(tmp_path / "run", *from_s3(server, tmp_path), "trainer.max_epochs=1")
    assert done.summary["status"] == "finished" and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (tmp_path / "cache").glob("*/shards/train/*.tar"))[:1] == ["shard-000000.tar"]


def test_the_cache_stays_within_data_cache_gb(server, tmp_path):
    shard = max(p.stat().st_size for p in (server["store"] / "train").glob("*.tar"))
    bound_gb = 3 * shard / 1e9  # three shards' room: an epoch's shuffled reads evict all the time
    dm = module(server, f"s3://{BUCKET}/store", cache_dir=str(tmp_path / "cache"), cache_gb=bound_gb, mean="none")
    dm.setup("fit")
    dataset, cache = dm.datasets["train"], dm.datasets["train"].records.shards
    largest = 0
    for i in torch.randperm(len(dataset)).tolist() * 2:
        dataset[i]
        largest = max(largest, cache.used())
    assert 0 < largest <= bound_gb * 1e9
    assert cache.evicted > 0 and cache.misses > 8 and cache.hits > 0  # 8 train shards through 3 places
    print("cache of 3 shards, 2 shuffled epochs of 8 shards:", cache.stats())


def test_a_missing_bucket_is_one_line_naming_the_url(server, tmp_path):
    with pytest.raises(ConfigError) as err:
        module(server, "s3://no-such-bucket/store", cache_dir=str(tmp_path / "cache")).setup("fit")
    message = str(err.value)
    assert message.startswith("data.store: s3://no-such-bucket/store/index.json: ") and "\n" not in message
    assert "bucket" in message.lower()
    with pytest.raises(ConfigError, match=f"data.store: s3://{BUCKET}/nothing/index.json: no prepared store there"):
        module(server, f"s3://{BUCKET}/nothing", cache_dir=str(tmp_path / "cache")).setup("fit")


def test_a_server_gone_mid_read_is_retried_then_stops_naming_the_url(server, tmp_path):
    port = free_port()
    proc = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
    fs.mkdir(BUCKET)
    fs.put(str(server["store"] / "index.json"), f"{BUCKET}/store/index.json")
    fs.put(str(server["store"] / "train"), f"{BUCKET}/store/train", recursive=True)
    no_retries = {"client_kwargs": {"endpoint_url": endpoint}, "config_kwargs": {"retries": {"max_attempts": 1}}}
    remote = Remote(f"s3://{BUCKET}/store", no_retries, retries=2, backoff_s=0.05)
    cache = ShardCache(remote, tmp_path / "shards", 10**9)
    assert cache.local(remote.url_of("train/shard-000000.tar")).stat().st_size > 0
    stop(proc)
    start = time.time()
    gone = rf"^data.store: s3://{BUCKET}/store/train/shard-000001.tar: .* \(after 3 tries\)$"
    with pytest.raises(StoreUnreachable, match=gone):
        cache.local(remote.url_of("train/shard-000001.tar"))
    assert time.time() - start >= 0.05 + 0.1  # the two waits, doubling
    assert not list((tmp_path / "shards").rglob("*.part"))  # no half-fetched shard left to count against the bound
    assert json.loads((server["store"] / "index.json").read_text())["splits"]  # the module's server is untouched


def test_a_store_gone_mid_run_stops_it_as_failed_keeping_its_checkpoint(server, tmp_path, monkeypatch):
    """Epoch 2's first read finds the store gone (after the retries): the run stops, epoch 1's last.ckpt kept."""
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    fetch = ShardCache.local

    def gone_after_epoch_one(self, url):
        if last.exists():
            raise StoreUnreachable(f"data.store: {url}: ConnectionError: gone (after 4 tries)")
        return fetch(self, url)

    monkeypatch.setattr(ShardCache, "local", gone_after_epoch_one)
    with pytest.raises(RunStopped, match=r"data.store: s3://.*: ConnectionError: gone \(after 4 tries\)") as stop:
        train_in_process(tmp_path / "run", *from_s3(server, tmp_path), "trainer.max_epochs=2")
    assert stop.value.status == "failed" and stop.value.checkpoint == str(last) and last.is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs"] == 1


def test_a_store_served_over_plain_http_reads_as_the_local_one(server, tmp_path, caplog):
    """Python's http.server (started and stopped by PID) serving the store's folder: data.store=http://..."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(server["tmp"])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/store"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/index.json", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        dm = data_module(
            server["root"],
            "synthetic",
            store=url,
            cache_dir=str(tmp_path / "cache"),
            num_workers=0,
            mean="none",
            pca_lighting=False,
            **SPEC,
        )
        dm.setup("fit")
        local = data_module(
            server["root"], "synthetic", store=str(server["store"]), cache_dir=str(tmp_path / "local"), num_workers=0, **SPEC
        )
        local.setup("fit")
        assert dm.datasets["val"].records.ids == local.datasets["val"].records.ids
        assert torch.equal(dm.datasets["val"][7][0], local.datasets["val"][7][0])
        # streamed: the middle rank of three reads the shards at both its cuts by HTTP range requests
        train, shards = dm.datasets["train"], dm.datasets["train"].records.shards
        stream = stream_of(ImageRecords(train.records, 76), 5, True, 1, 3, shuffle_buffer=0)
        planned = stream.part(0, 0, 1).tolist()
        got = [digest(image) for x, _ in map(collate, stream) for image in x]
        assert got == [digest(local.datasets["train"][i][0]) for i in planned] and len(got) == 10
        # http.server answers a range request with the whole file: sliced, and said once
        assert shards.ranges >= 1 and caplog.text.count("ignores byte ranges") == 1
    finally:
        stop(proc)


def prepare_to(server, url: str, staging, **args) -> str:
    """``prepare`` of the module's synthetic set into URL as the module's local store was prepared; what it printed."""
    import io

    from rich.console import Console

    from alexnet.data.prepare import prepare

    printed = io.StringIO()
    console = Console(file=printed, width=200)
    options = dict(workers=1, resize=76, shard_size=4, console=console, storage_options=options_of(server), staging=staging)
    prepare(server["root"], url, **{**options, **args})
    return printed.getvalue()


def options_of(server) -> dict:
    return options(server)


def objects(server, prefix: str) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": server["endpoint"]}, skip_instance_cache=True)
    return {name.split(f"{prefix}/", 1)[1]: fs.cat_file(name) for name in fs.find(f"{BUCKET}/{prefix}")}


def test_prepare_writes_the_store_to_s3_through_an_emptied_staging_folder_and_resumes(server, tmp_path):
    staging = tmp_path / "staging"
    printed = prepare_to(server, f"s3://{BUCKET}/prepared", staging, workers=2)  # the uploads in the forked workers
    assert "0 of 13 shards already done" in printed
    assert staging.is_dir() and not any(staging.iterdir())  # each shard deleted once uploaded; the folders made for them too
    local = server["store"]
    uploaded = objects(server, "prepared")
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file() and ".cache" not in p.parts)
    assert sorted(uploaded) == files and len(files) == 2 * 13 + 3  # shards, markers, index, manifest, plan
    for name in files:  # the same bytes as the local prepare's, index.json included (not the plan: it names OUT)
        assert name == "prepare.json" or uploaded[name] == (local / name).read_bytes(), name
    s3 = module(server, f"s3://{BUCKET}/prepared", cache_dir=str(tmp_path / "cache"), mean="none")
    disk = module(server, str(local), cache_dir=str(tmp_path / "local-cache"), mean="none")
    s3.setup("fit"), disk.setup("fit")
    for split in ("train", "val"):
        a, b = s3.datasets[split].records, disk.datasets[split].records
        assert len(a) == SPEC[f"{split}_per_class"] * 10 and a.ids == b.ids and a.labels.tolist() == b.labels.tolist()
        assert torch.equal(s3.datasets[split][3][0], disk.datasets[split][3][0])

    rerun = prepare_to(server, f"s3://{BUCKET}/prepared", staging)
    assert "13 of 13 shards already done" in rerun and objects(server, "prepared") == uploaded  # nothing uploaded again
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": server["endpoint"]}, skip_instance_cache=True)
    fs.rm(f"{BUCKET}/prepared/train/shard-000002.tar")  # gone
    fs.pipe(f"{BUCKET}/prepared/val/shard-000001.tar", uploaded["val/shard-000001.tar"][:1000])  # cut short
    again = prepare_to(server, f"s3://{BUCKET}/prepared", None)  # a temporary staging folder
    assert "11 of 13 shards already done" in again and objects(server, "prepared") == uploaded


def test_prepare_to_a_missing_bucket_is_one_line_before_any_work(server, tmp_path, monkeypatch, capsys):
    from alexnet.data import prepare as prepare_module

    def no_work(*args, **kwargs):
        raise AssertionError("the source was opened before the URL was checked")

    monkeypatch.setattr(prepare_module, "open_source", no_work)
    argv = [str(server["root"]), "s3://no-such-bucket/store", "--storage-options", json.dumps(options(server))]
    with pytest.raises(SystemExit) as done:
        prepare_module.main([*argv, "--staging", str(tmp_path / "staging")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: prepare OUT: s3://no-such-bucket/store: ") and err.count("\n") == 1
    assert "bucket does not exist" in err and not (tmp_path / "staging").exists()
    with pytest.raises(SystemExit) as done:
        prepare_module.main([*argv[:-1], "{not json"])
    assert done.value.code == 2 and capsys.readouterr().err.startswith("config error: prepare --storage-options: not JSON")
    with pytest.raises(SystemExit) as done:
        prepare_module.main([str(server["root"]), str(tmp_path / "folder"), "--staging", str(tmp_path / "staging")])
    assert done.value.code == 2 and "--storage-options and --staging are for a URL" in capsys.readouterr().err


def test_prepare_to_s3_stopped_by_sigterm_keeps_the_uploaded_shards(server, tmp_path, monkeypatch, capsys):
    import os
    import signal

    from alexnet.data import prepare as prepare_module

    write, written = prepare_module.write_shard, []

    def stopped_after_two(task):
        if len(written) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler prepare installed raises here
        written.append(write(task))
        return written[-1]

    monkeypatch.setattr(prepare_module, "write_shard", stopped_after_two)
    argv = [str(server["root"]), f"s3://{BUCKET}/stopped", "--storage-options", json.dumps(options(server))]
    argv += ["--workers", "1", "--resize", "76", "--shard-size", "4", "--staging", str(tmp_path / "staging")]
    with pytest.raises(SystemExit) as done:
        prepare_module.main(argv)
    assert done.value.code == 143 and "stopped by SIGTERM" in capsys.readouterr().out
    kept = objects(server, "stopped")
    assert sorted(kept) == ["prepare.json", "train/shard-000000.json", "train/shard-000000.tar"] + [
        "train/shard-000001.json",
        "train/shard-000001.tar",
    ]  # no index.json: not yet a store
    assert not any((tmp_path / "staging").iterdir())
    monkeypatch.setattr(prepare_module, "write_shard", write)
    prepare_module.main(argv)
    assert "2 of 13 shards already done" in " ".join(capsys.readouterr().out.split())
    assert objects(server, "stopped")["index.json"] == (server["store"] / "index.json").read_bytes()


# The streamed training split (alexnet.data.stream; data.stream is on for a URL store by default).


def stub_records(n: int, per_shard: int = 4) -> Records:
    file_of = np.arange(n) // per_shard
    return Records(
        classes=["a"],
        ids=[str(i) for i in range(n)],
        labels=np.zeros(n, dtype=np.int64),
        files=[f"shard-{k}.tar" for k in range(file_of[-1] + 1)],
        file_of=file_of.astype(np.int32),
        offsets=np.zeros(n, dtype=np.int64),
        sizes=np.ones(n, dtype=np.int64),
    )


class Decodes:
    """What a stream needs of the dataset that decodes its batches, for the plan alone (no reads)."""

    def __init__(self, records: Records):
        self.records, self.reader = records, None


@pytest.mark.parametrize("n", [30, 31])
def test_each_rank_and_worker_streams_its_own_contiguous_part_every_image_once(n):
    """30 images over 1, 2 and 3 ranks: each once per epoch; 31: the last rank's part wrapped to
    the start (as torch's DistributedSampler pads), so that every rank has as many batches."""
    records, batch = stub_records(n), 4
    for world in (1, 2, 3):
        for workers in (1, 2):  # data.num_workers=0 reads as one worker
            for drop_last in (False, True):
                streams = [stream_of(Decodes(records), batch, drop_last, r, world, shuffle_buffer=0) for r in range(world)]
                order = epoch_order(records.file_of, 7, 3)
                per_rank = -(-n // world)
                padded = np.resize(order, per_rank * world)
                parts = {(r, w): streams[r].part(3, w, workers) for r in range(world) for w in range(workers)}
                for r in range(world):
                    mine = np.concatenate([parts[r, w] for w in range(workers)])
                    # the rank's contiguous part of the epoch's order, dealt to its workers in whole batches
                    assert mine.tolist() == padded[r * per_rank : r * per_rank + len(mine)].tolist()
                    assert all(len(parts[r, w]) % batch == 0 for w in range(workers - 1))
                    assert sum(-(-len(parts[r, w]) // batch) for w in range(workers)) == len(streams[r])
                    assert len(mine) == (len(streams[r]) * batch if drop_last else per_rank)
                assert len({len(s) for s in streams}) == 1  # as many batches on every rank
                assert len(streams[0]) == (per_rank // batch if drop_last else -(-per_rank // batch))
                seen = Counter(np.concatenate(list(parts.values())).tolist())
                if not drop_last:
                    assert seen == Counter(padded.tolist())
                    if n % world == 0:
                        assert seen == Counter(range(n)), (world, workers)  # every image exactly once
                # a part's inner shards are its own: only the shards at its two ends are shared
                for key, part in parts.items():
                    inner = set(records.file_of[part].tolist()) - {records.file_of[part[0]], records.file_of[part[-1]]}
                    others = {f for k, p in parts.items() if k != key for f in records.file_of[p].tolist()}
                    assert not inner & others, (world, workers, key)
    epochs = [epoch_order(records.file_of, 7, e) for e in (0, 1)]
    assert sorted(epochs[0].tolist()) == list(range(n)) and epochs[0].tolist() != epochs[1].tolist()
    assert epoch_order(records.file_of, 8, 0).tolist() != epochs[0].tolist()  # the run's seed counts too


def stream_of(dataset, batch_size: int, drop_last: bool, rank: int, world: int, shuffle_buffer: int) -> ShardStream:
    return ShardStream(
        dataset, batch_size=batch_size, drop_last=drop_last, rank=rank, world=world, seed=7, shuffle_buffer=shuffle_buffer
    )


def raw(server, store: str, cache: str, **overrides):
    """The data module, set up, whose training batches are the stored pixels (no mean, no colour noise)."""
    dm = module(server, store, cache_dir=cache, mean="none", pca_lighting=False, **overrides)
    dm.setup("fit")
    return dm


def train_images(server, tmp_path):
    """The local store's module and its training images' digests, by index."""
    local = raw(server, str(server["store"]), str(tmp_path / "local"))
    images = local.datasets["train"]
    return local, [digest(images[i][0]) for i in range(len(images))]


def test_streamed_batches_are_the_stores_images_read_by_range_at_the_cuts_within_the_cache_bound(server, tmp_path, monkeypatch):
    """Three ranks' streams from S3 through a cache of three shards, two epochs: each batch holds
    the images of the stream's own plan, pixel for pixel; the shards cut between two ranks are read
    by byte range, each less than its shard; the cache folder never holds more than its bound."""
    shard_bytes = {p.name: p.stat().st_size for p in (server["store"] / "train").glob("*.tar")}
    bound_gb = 3 * max(shard_bytes.values()) / 1e9
    dm = raw(server, f"s3://{BUCKET}/store", str(tmp_path / "cache"), cache_gb=bound_gb)
    local, digests = train_images(server, tmp_path)
    assert dm.streamed and not local.streamed  # data.stream=null: on for a URL store only
    records, cache = dm.datasets["train"].records, dm.datasets["train"].records.shards
    ranges = []
    read_range = cache.range
    monkeypatch.setattr(cache, "range", lambda url, start, end: ranges.append((url, end - start)) or read_range(url, start, end))
    largest = 0
    for epoch in (0, 1):
        seen = []
        for rank in range(3):
            stream = stream_of(SkipUnreadable(ImageRecords(records, 76)), 5, True, rank, 3, shuffle_buffer=3)
            stream.set_epoch(epoch)
            planned = list(buffer_shuffle(stream.part(epoch, 0, 1), 3, stream.shuffle_rng(epoch, 0)))
            got = []
            for x, *_ in map(collate, stream):
                got += [digest(image) for image in x]
                largest = max(largest, cache.used())
            assert got == [digests[i] for i in planned] and len(got) == 10
            seen += got
        assert Counter(seen) == Counter(digests)  # 30 images over 3 ranks: each once
    assert 0 < largest <= bound_gb * 1e9 and cache.evicted > 0
    assert ranges and all(size < shard_bytes[url.rsplit("/", 1)[1]] for url, size in ranges), ranges
    assert cache.ranged_bytes == sum(size for _, size in ranges)
    print("streamed, 3 ranks, 2 epochs, cache of 3 shards:", cache.stats())

    # data.stream=true on a local store: the same plan read from the local shards
    stream = raw(server, str(server["store"]), str(tmp_path / "local"), stream=True).train_dataloader().dataset
    planned = list(buffer_shuffle(stream.part(0, 0, 1), stream.shuffle_buffer, stream.shuffle_rng(0, 0)))
    assert [digest(image) for x, *_ in map(collate, stream) for image in x] == [digests[i] for i in planned[:24]]


def test_streamed_loader_workers_take_the_epoch_each_from_its_own_part(server, tmp_path):
    """Two persistent loader workers: the epoch set in the main process reaches them (shared memory),
    each yields its own part's batches in turn, and the next epoch's order is another."""
    dm = raw(server, f"s3://{BUCKET}/store", str(tmp_path / "cache"), num_workers=2, batch_size=5)
    _, digests = train_images(server, tmp_path)
    loader = dm.train_dataloader()
    assert isinstance(loader, StreamLoader) and len(loader) == 6  # 30 images in batches of 5, one rank
    stream, orders = loader.dataset, []
    for epoch in (0, 1):
        stream.set_epoch(epoch)  # the Trainer's epoch, through StreamLoader, in a run
        got = [[digest(image) for image in x] for x, *_ in loader]
        planned = [
            [digests[i] for i in buffer_shuffle(stream.part(epoch, w, 2), stream.shuffle_buffer, stream.shuffle_rng(epoch, w))]
            for w in range(2)
        ]
        assert [d for b in got[0::2] for d in b] == planned[0] and [d for b in got[1::2] for d in b] == planned[1]
        orders.append([d for b in got for d in b])
    assert Counter(orders[0]) == Counter(orders[1]) == Counter(digests) and orders[0] != orders[1]


def test_streaming_needs_a_store_and_a_buffer_of_zero_or_more(server, tmp_path):
    folders = data_module(server["root"], "synthetic", stream=True, cache_dir=str(tmp_path / "cache"), num_workers=0, **SPEC)
    with pytest.raises(ConfigError, match=r"^data.stream: true streams a prepared store's shards, and .* holds the folder"):
        folders.setup("fit")
    with pytest.raises(ConfigError, match=r"^data.shuffle_buffer: must be >= 0 images, got -1$"):
        build("data", instantiate, data_node(server["root"], "synthetic", shuffle_buffer=-1))


def test_the_statistics_of_a_streamed_store_read_a_few_whole_shards_spread_over_the_split():
    file_of = np.repeat(np.arange(100), 10)  # 100 shards of 10 images, as prepare writes them: shard after shard
    chosen = whole_shards(file_of, 35)
    shards = sorted(set(file_of[chosen].tolist()))
    assert len(chosen) == 35 and len(set(chosen)) == 35
    assert len(shards) == 4 and shards[0] == 0 and shards[-1] > 50  # whole shards, spread out: not the first four
    assert whole_shards(file_of, 0) is None and whole_shards(file_of, 1000) is None  # all of them


def test_two_ranks_streaming_from_s3_train_on_every_image_once_per_epoch(server, tmp_path):
    """A real DDP run (2 gloo processes, 2 loader workers each) from the S3 server, 2 epochs. The
    crop is the whole image, with no reflection, colour noise or mean: a batch's pixels are the
    stored images', so a callback (tests/seen_images.py) names the images each rank trained on."""
    _, digests = train_images(server, tmp_path)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)}
    run_train(
        f"data.root={server['root']}",
        f"data.store=s3://{BUCKET}/store",
        f"+data.storage_options.client_kwargs.endpoint_url={server['endpoint']}",
        f"data.cache_dir={tmp_path}/cache",
        *[f"data.{k}={v}" for k, v in SPEC.items()],
        "data.batch_size=10",  # 5 a rank: 15 images a rank, 3 batches, split 1 + 2 over its workers
        "data.num_workers=2",
        "data.crop_size=76",
        "data.flip=false",
        "data.pca_lighting=false",
        "data.mean=none",
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        "+trainer.limit_val_batches=1",
        "test=false",
        "logger=none",
        "++figures=false",
        "++callbacks.model_checkpoint.save_top_k=0",
        "+callbacks.seen._target_=seen_images.SeenImages",
        f"hydra.run.dir={run}",
        env=env,
    )
    assert "IterableDataset" not in (run / "train.log").read_text()  # its length is exact: Lightning's doubt is not shown
    seen = {r: [line.split() for line in (run / f"seen_rank{r}.txt").read_text().splitlines()] for r in (0, 1)}
    for epoch in ("0", "1"):
        per_rank = [[d for e, d in seen[r] if e == epoch] for r in (0, 1)]
        assert [len(p) for p in per_rank] == [15, 15]
        assert Counter(per_rank[0] + per_rank[1]) == Counter(digests), epoch  # every image once across the job
    assert [d for e, d in seen[0] if e == "0"] != [d for e, d in seen[0] if e == "1"]  # another order each epoch
