"""data.store=s3://...: a prepared store streamed from object storage (alexnet.data.remote).

The S3 server is moto's standalone server (alexnet.bench.s3server), started as a process on a free
port and stopped by its PID; dummy credentials come from the environment, as botocore reads real ones. A real
cloud bucket is not tested."""

import json
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from builders import data_module
from conftest import fixture_dir, train_in_process

from alexnet.bench.s3server import CREDENTIALS, free_port, stop
from alexnet.bench.s3server import start as start_moto
from alexnet.data.remote import Remote, ShardCache
from alexnet.errors import ConfigError, RunStopped, StoreUnreachable

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
        num_workers=0,
        batch_size=8,
        **SPEC,
        **overrides,
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


def test_a_store_served_over_plain_http_reads_as_the_local_one(server, tmp_path):
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
        dm = data_module(server["root"], "synthetic", store=url, cache_dir=str(tmp_path / "cache"), num_workers=0, **SPEC)
        dm.setup("fit")
        local = data_module(
            server["root"], "synthetic", store=str(server["store"]), cache_dir=str(tmp_path / "local"), num_workers=0, **SPEC
        )
        local.setup("fit")
        assert dm.datasets["val"].records.ids == local.datasets["val"].records.ids
        assert torch.equal(dm.datasets["val"][7][0], local.datasets["val"][7][0])
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
