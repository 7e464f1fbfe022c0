"""A prepared store read through fsspec (``data.store=s3://bucket/prefix``, ``gs://``, ``https://``,
``file://``): its ``index.json`` and shard markers at the start, then shards fetched whole into a
local cache bounded by ``data.cache_gb`` (least recently used shards evicted), or a part of a shard
by byte range, into memory only. The dataset is never copied whole unless the bound allows it.

The training split is streamed (``stream``: each rank and loader worker its own run of shards,
fetched a piece ahead). Validation and test, and training with ``data.stream=false``, keep the
local store's design: one map-style dataset over every record, shuffled by the sampler, whose
records' bytes come from the cached shard file (``ByteReader``).

Credentials come from where the storage's own library looks (s3fs/botocore: the environment,
``~/.aws/credentials``, the instance role); ``data.storage_options`` goes to the filesystem as is
(an ``endpoint_url`` in ``client_kwargs`` for MinIO or a test server, ``anon: true`` for a public bucket).

A network error is retried ``RETRIES`` times, waiting ``BACKOFF_S`` doubling; then
``StoreUnreachable`` stops the run (its last checkpoint kept). A missing object or a refusal is
not retried: at the start it is a config error naming the URL.
"""

import fcntl
import hashlib
import json
import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from alexnet.data.cache import CacheFolder, user_cache_root
from alexnet.data.store import INDEX, StoreSource, parse_json
from alexnet.errors import ConfigError, StoreUnreachable

log = logging.getLogger(__name__)

RETRIES = 3  # tries after the first: a dropped connection or a throttled request usually passes on a retry
BACKOFF_S = 0.5  # first wait; doubled each retry (0.5 + 1 + 2 s in all before giving up)
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location) -> bool:
    return isinstance(location, str) and bool(URL.match(location))


def local_folder(url: str, cache_dir: Path | None) -> Path:
    """Where a URL store's shards and caches go: ``data.cache_dir`` when set, else a per-user folder,
    named after the URL (readable) and its hash (unique)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", url).strip("_")[-80:]
    name = f"{readable}-{hashlib.sha1(url.encode()).hexdigest()[:8]}"
    return (Path(cache_dir) if cache_dir else user_cache_root() / "stores") / name


class Remote:
    """The store's URL, opened with fsspec once per process (a forked loader worker opens its own:
    an async client's event loop does not survive a fork), every call retried on network errors."""

    def __init__(self, url: str, storage_options: dict, retries: int = RETRIES, backoff_s: float = BACKOFF_S):
        self.url = url.rstrip("/")
        self.storage_options = storage_options
        self.retries, self.backoff_s = retries, backoff_s
        self._fs, self._base, self._pid = None, None, None

    def __getstate__(self):
        return {**self.__dict__, "_fs": None, "_base": None, "_pid": None}

    def fs(self):
        if self._fs is None or self._pid != os.getpid():
            import fsspec

            self._fs, self._base = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **self.storage_options)
            self._pid = os.getpid()
        return self._fs

    def path(self, rel: str) -> str:
        self.fs()
        return f"{self._base.rstrip('/')}/{rel}"

    def url_of(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def call(self, what: str, fn):
        """``fn()``, retried on network errors; a missing object or a refusal raises at once."""
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (FileNotFoundError, PermissionError, TypeError, ValueError):  # missing, refused, misconfigured
                raise
            except Exception as err:
                if attempt == self.retries:
                    raise StoreUnreachable(f"data.store: {what}: {one_line(err)} (after {self.retries + 1} tries)") from err
                log.warning("data.store: %s: %s; retrying in %.1f s", what, one_line(err), wait)
                self._fs = None  # a fresh connection for the retry
                time.sleep(wait)
                wait *= 2

    def cat(self, rels: list[str]) -> list[bytes]:
        def fetch():
            paths = [self.path(r) for r in rels]
            got = self.fs().cat(paths)
            return [got[p] for p in paths]

        return self.call(self.url_of(rels[0]) if len(rels) == 1 else f"{self.url} ({len(rels)} objects)", fetch)

    def cat_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of one object: a ranged GET."""
        fetch = lambda: self.fs().cat_file(self.path(rel), start=start, end=end)
        return self.call(f"{self.url_of(rel)} bytes {start}-{end}", fetch)

    def size(self, rel: str) -> int:
        return self.call(self.url_of(rel), lambda: int(self.fs().info(self.path(rel))["size"]))

    def get(self, rel: str, local: Path) -> None:
        self.call(self.url_of(rel), lambda: self.fs().get_file(self.path(rel), str(local)))


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class ShardCache:
    """Shards fetched whole on first use into ``folder``, at most ``max_bytes`` there (files being
    fetched included: their size is reserved first), least recently used evicted. Shared by a
    run's loader workers and ranks through a lock file; each process counts its own hits/misses."""

    LOCK = ".lock"

    def __init__(self, remote: Remote, folder: Path, max_bytes: int):
        self.remote, self.folder, self.max_bytes = remote, Path(folder), max_bytes
        self.hits = self.misses = self.evicted = self.fetched_bytes = 0
        self.ranges = self.ranged_bytes = 0  # byte ranges read without caching the shard (``range``)
        self.warned_whole = False

    def stats(self) -> dict:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evicted": self.evicted,
            "fetched_bytes": self.fetched_bytes,
            "ranges": self.ranges,
            "ranged_bytes": self.ranged_bytes,
        }

    def relative(self, url: str) -> str:
        prefix = self.remote.url + "/"
        if not url.startswith(prefix):
            raise ValueError(f"{url} is not inside the store {self.remote.url}")
        return url[len(prefix) :]

    def cached(self, url: str) -> Path | None:
        """The shard's local copy if there is one (marked as just used), else None: nothing fetched."""
        path = self.folder / self.relative(url)
        try:
            os.utime(path)  # the LRU clock: the modification time
        except FileNotFoundError:
            return None
        self.hits += 1
        return path

    def range(self, url: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the shard, read from the store into memory and not cached: the
        part of a shard that a streamed worker shares with another (``stream``)."""
        data = self.remote.cat_range(self.relative(url), start, end)
        self.ranges += 1
        self.ranged_bytes += len(data)
        if len(data) > end - start and len(data) >= end:  # the whole object: a server that ignores Range
            if not self.warned_whole:
                log.warning(
                    "data.store: %s ignores byte ranges (sent %d bytes for %d): whole shards are fetched",
                    url,
                    len(data),
                    end - start,
                )
                self.warned_whole = True
            data = data[start:end]
        if len(data) != end - start:
            raise OSError(f"{url}: expected {end - start} bytes at offset {start}, got {len(data)} (object changed?)")
        return data

    def local(self, url: str) -> Path:
        """The shard's local copy, fetched now if absent; marked as just used."""
        found = self.cached(url)
        if found is not None:
            return found
        rel = self.relative(url)
        path = self.folder / rel
        size = self.remote.size(rel)
        if size > self.max_bytes:
            raise ConfigError(f"data.cache_gb: {self.max_bytes / 1e9:g} GB holds less than one shard ({url}: {size} bytes)")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
        with self.locked():
            if path.exists():
                self.hits += 1
                return path
            self.make_room(size)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.truncate(size)  # reserved: counted by the others while it downloads
        try:
            self.remote.get(rel, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self.locked():
            tmp.replace(path)
        self.misses += 1
        self.fetched_bytes += size
        return path

    @contextmanager
    def locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / self.LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def files(self) -> list[tuple[Path, os.stat_result]]:
        return [(p, p.stat()) for p in self.folder.rglob("*") if p.is_file() and p.name != self.LOCK]

    def used(self) -> int:
        return sum(st.st_size for _, st in self.files())

    def make_room(self, size: int) -> None:
        """Evicts the least recently used complete shards until ``size`` more bytes fit (under the lock)."""
        files = self.files()
        used = sum(st.st_size for _, st in files)
        done = sorted(((st.st_mtime_ns, p, st.st_size) for p, st in files if not p.name.endswith(".part")), key=lambda t: t[0])
        for _, path, nbytes in done:
            if used + size <= self.max_bytes:
                break
            path.unlink(missing_ok=True)  # a worker reading it keeps its open descriptor (ByteReader)
            used -= nbytes
            self.evicted += 1
        if used + size > self.max_bytes:
            log.warning("data.cache_gb: shards being fetched by other workers fill the cache; %s goes over it", self.folder)


class RemoteStoreSource(StoreSource):
    """A ``StoreSource`` at a URL: the same index, splits and records; the records name the shards
    by URL and carry the ``ShardCache`` that turns a URL into a local file on first read."""

    def __init__(self, url: str, cache_dir: Path | None, storage_options: dict, cache_gb: float):
        if cache_gb <= 0:
            raise ConfigError(f"data.cache_gb: must be positive, got {cache_gb}")
        self.remote = Remote(url, storage_options)
        self.folder = local_folder(self.remote.url, cache_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shards = ShardCache(self.remote, self.folder / "shards", int(cache_gb * 1e9))
        super().__init__(self.remote.url, self.folder)

    def open_root(self, root, cache_dir) -> None:
        self.root = root  # the URL, for messages
        self.cache = CacheFolder(self.folder, None)  # statistics beside the shards

    def read(self, rel: str) -> str:
        """At the start: what cannot be read is a config error naming the URL (a missing bucket,
        a refusal, no store there, a server that does not answer after the retries)."""
        try:
            return self.remote.cat([rel])[0].decode()
        except FileNotFoundError as err:
            reason = one_line(err)
            if rel == INDEX and "bucket" not in reason.lower():
                reason = "no prepared store there (python -m alexnet.data.prepare makes one; upload its folder)"
        except PermissionError as err:
            reason = one_line(err)
        except StoreUnreachable as err:
            reason = one_line(err.__cause__ or err)
        raise ConfigError(f"data.store: {self.remote.url_of(rel)}: {reason}")

    def where(self, rel: str) -> str:
        return self.remote.url_of(rel)

    def markers(self, shards: list[str]) -> list[dict]:
        rels = [str(Path(s).with_suffix(".json")) for s in shards]
        return [parse_json(b, self.where(rel)) for rel, b in zip(rels, self.remote.cat(rels))]  # fetched concurrently

    def with_reader(self, records):
        records.shards = self.shards
        return records

    def content_key(self, files: list[str]) -> str:
        """The statistics cache's key: the store's index (written last, once per preparation) and the files read."""
        digest = hashlib.sha1(json.dumps(self.index, sort_keys=True).encode())
        digest.update("\n".join(dict.fromkeys(files)).encode())
        return digest.hexdigest()
