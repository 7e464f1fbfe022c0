"""prepare's output at a URL: ``python -m alexnet.data.prepare SRC s3://bucket/prefix`` (any fsspec URL).

Each shard is written to a local staging folder as for a local store, then uploaded, its done
marker after it, and deleted locally once the uploaded object's size is confirmed: the staging
folder holds at most one shard per worker. ``index.json`` goes up last, so the URL holds a store
(``data.store`` reads one) only once every shard is there and verified.

A rerun skips the shards whose marker is at the URL and whose tar there has the marker's size;
the others are written and uploaded again. Retries and their backoff are ``remote.Remote``'s.
A missing bucket or a refusal is a ``ConfigError`` naming the URL, found by the listing made
before any image is read (a refused write: at the first write, ``prepare.json``).
"""

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from alexnet.data.remote import Remote, local_folder, one_line
from alexnet.data.verify import StoreError, summarize
from alexnet.errors import ConfigError, StoreUnreachable

KEY = "prepare OUT"  # what a message names: the command's argument


def call(remote: Remote, rel: str, fn):
    """``remote.call`` of ``fn``, its failures named as prepare's (not ``data.store``'s)."""
    url = remote.url_of(rel) if rel else remote.url
    try:
        return remote.call(url, fn)
    except (FileNotFoundError, PermissionError) as err:
        raise ConfigError(f"{KEY}: {url}: {one_line(err)}") from None
    except StoreUnreachable as err:
        cause = one_line(err.__cause__) if err.__cause__ else str(err)
        raise StoreUnreachable(f"{KEY}: {url}: {cause} (after {remote.retries + 1} tries)") from None


def marker_name(rel: str) -> str:
    return str(Path(rel).with_suffix(".json"))


def upload_shard(remote: Remote, tar: Path, rel: str, marker: dict) -> None:
    """In the worker that wrote it: the shard, its size checked at the URL, then its marker; the
    local copies deleted only then (an upload cut short leaves no marker: a rerun redoes it)."""
    call(remote, rel, lambda: remote.fs().put_file(str(tar), remote.path(rel)))
    uploaded = call(remote, rel, lambda: int(remote.fs().info(remote.path(rel))["size"]))
    if uploaded != marker["tar_bytes"]:
        raise StoreError(f"{remote.url_of(rel)}: {uploaded} bytes after the upload, {marker['tar_bytes']} written")
    data = json.dumps(marker).encode()
    call(remote, marker_name(rel), lambda: remote.fs().pipe_file(remote.path(marker_name(rel)), data))
    tar.unlink()
    tar.with_suffix(".json").unlink(missing_ok=True)


class UrlOut:
    """The URL a store is prepared into, and the local staging folder its shards pass through:
    ``staging`` (``--staging DIR``: a folder named after the URL inside it) or a temporary folder."""

    def __init__(self, url: str, storage_options: dict, staging: Path | None):
        self.remote = Remote(url, storage_options)
        self.url = self.remote.url
        self.temporary = staging is None
        # The temporary folder is made by make_staging: nothing is left behind when the URL is refused first.
        temporary = Path(tempfile.gettempdir()) / f"alexnet-prepare-{os.getpid()}-{secrets.token_hex(4)}"
        self.staging = temporary if staging is None else local_folder(self.url, staging)

    def listing(self) -> dict[str, int]:
        """The size of every object under the URL, by its path in the store. A missing bucket
        raises here, before any work (an existing bucket with nothing under the prefix is empty)."""
        base = self.remote.path("")
        found = call(self.remote, "", lambda: self.remote.fs().find(base, detail=True))
        return {name[len(base) :]: int(info["size"]) for name, info in found.items() if name.startswith(base)}

    def read_json(self, rel: str, listing: dict[str, int]) -> dict | None:
        if rel not in listing:
            return None
        return json.loads(call(self.remote, rel, lambda: self.remote.fs().cat_file(self.remote.path(rel))))

    def write_text(self, rel: str, text: str) -> None:
        call(self.remote, rel, lambda: self.remote.fs().pipe_file(self.remote.path(rel), text.encode()))

    def check_plan(self, plan: str, digest: str, src: Path, listing: dict[str, int]) -> None:
        previous = self.read_json(plan, listing)
        if previous is None:
            self.write_text(plan, json.dumps({"fingerprint": digest, "source": str(src)}))
        elif previous["fingerprint"] != digest:
            raise SystemExit(
                f"{self.url} holds a store prepared from another source or with other options (its {plan} differs): "
                f"choose another URL or delete what is under {self.url}"
            )

    def done(self, shards: list[dict], listing: dict[str, int]) -> dict[str, dict]:
        """The markers of the shards complete at the URL: marker there, and the tar at the marker's size."""
        marked = [s["rel"] for s in shards if marker_name(s["rel"]) in listing]
        if not marked:
            return {}
        paths = [self.remote.path(marker_name(rel)) for rel in marked]
        found = call(self.remote, "", lambda: self.remote.fs().cat(paths))  # fetched concurrently
        markers = [found[p] for p in paths]
        done = {}
        for rel, text in zip(marked, markers):
            marker = json.loads(text)
            if listing.get(rel) == marker["tar_bytes"]:
                done[rel] = marker
        return done

    def verify(self, splits: list[str], planned: dict[str, int], classes: list[str], shard_size: int, markers: dict) -> dict:
        """What the URL holds now, against the markers written: every planned shard's marker and
        its tar at the marker's size (each tar was read against its marker before its upload)."""
        listing = self.listing()

        def checked_marker(shard: Path) -> dict:
            rel = str(shard)
            if rel not in markers or marker_name(rel) not in listing:
                raise StoreError(f"{self.remote.url_of(marker_name(rel))}: missing: the shard was not uploaded (rerun prepare)")
            if listing.get(rel) != markers[rel]["tar_bytes"]:
                raise StoreError(
                    f"{self.remote.url_of(rel)}: {listing.get(rel)} bytes there, its marker says {markers[rel]['tar_bytes']}"
                )
            return markers[rel]

        return summarize(splits, planned, classes, shard_size, checked_marker)

    def make_staging(self, splits: list[str]) -> None:
        if not self.temporary:
            self.clear_staging(splits)  # a stopped run's staged shards: redone, as they have no marker at the URL
        for split in splits:
            (self.staging / split).mkdir(parents=True, exist_ok=True)

    def clear_staging(self, splits: list[str]) -> None:
        """The staged shards, and the folders made for them: the URL is where the done ones are."""
        if self.temporary:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        for split in splits:
            folder = self.staging / split
            for path in folder.glob("shard-*"):
                path.unlink(missing_ok=True)
            if folder.is_dir():
                folder.rmdir()
        if self.staging.is_dir() and not any(self.staging.iterdir()):
            self.staging.rmdir()
