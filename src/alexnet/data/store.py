"""The prepared store that ``python -m alexnet.data.prepare`` writes, and how it is read.

Layout (WebDataset tar shards, each with a JSON index of its members' byte offsets)::

    OUT/index.json                  written last: its presence means complete and verified; it records
                                    the ordered classes and, per split, the source's files fingerprint
    OUT/unreadable.tsv              split, source image, reason: the manifest of what was left out
    OUT/<split>/shard-000000.tar    WebDataset samples: <key>.jpg (256x256 JPEG), <key>.cls (label)
    OUT/<split>/shard-000000.json   the shard's done marker: keys, labels, source ids, byte offsets

Any WebDataset reader streams the shards (``webdataset.WebDataset("OUT/train/shard-{000000..000099}.tar")``);
this project reads them by offset instead: as a map-style dataset (exact shuffling, a length,
Lightning's distributed sampler), or for training, as a stream of whole shards per loader worker
(``stream``; a URL store's default).

A store read in place of ``data.root`` (``data.store``) is first compared with what the root
holds, when it exists: the same classes in the same order, and per split the same files with
the same sizes (``fingerprint``). A store prepared from other data stops the run.
"""

import json
import logging
from pathlib import Path

from alexnet.data import fingerprint
from alexnet.data.cache import CacheFolder
from alexnet.data.records import Records
from alexnet.errors import ConfigError

log = logging.getLogger(__name__)

INDEX = "index.json"
MANIFEST = "unreadable.tsv"  # split, source image, reason: what prepare left out
FORMAT = "webdataset-shards+offsets"
VERSION = 1


def is_store(root: Path) -> bool:
    return (Path(root) / INDEX).is_file()


def parse_json(text: str | bytes, where) -> dict:
    """A store's index or a shard's done marker, read from WHERE (a path or URL); a damaged one (cut
    short by a copy, a full disk) is named."""
    try:
        found = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{where}: not valid JSON ({err}): the store is damaged; prepare it again into a new folder "
            "(python -m alexnet.data.prepare SRC OUT)"
        ) from None
    if not isinstance(found, dict):
        raise ConfigError(f"{where}: not a store's JSON object (a JSON {type(found).__name__}); prepare the store again")
    return found


def read_index(root: Path) -> dict:
    return parse_index((Path(root) / INDEX).read_text(), root)


def parse_index(text: str, root) -> dict:
    index = parse_json(text, f"{root}/{INDEX}")
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ConfigError(f"{root}/{INDEX}: not a store of format {FORMAT} v{VERSION} (rerun prepare into a new folder)")
    return index


def shard_records(classes: list[str], tar: str, marker: dict) -> Records:
    members = [(m["id"], m["offset"], m["size"], m["label"]) for m in marker["members"]]
    return Records.of_members(classes, tar, members)


class StoreSource:
    kind = "store"

    def __init__(self, root: Path, cache_dir: Path | None = None):
        self.open_root(root, cache_dir)
        self.index = parse_index(self.read(INDEX), self.root)
        self.wnids: list[str] = self.index["classes"]
        self.names: list[str] = self.index["names"]
        self.resize: int = self.index["resize"]

    def open_root(self, root: Path, cache_dir: Path | None) -> None:
        self.root = Path(root)
        self.cache = CacheFolder(self.root, cache_dir)

    def read(self, rel: str) -> str:
        """A file of the store as text, by its path in the store (``remote`` reads it from a URL)."""
        return (self.root / rel).read_text()

    def where(self, rel: str) -> str:
        """A file of the store, named as the records and messages name it."""
        return str(self.root / rel)

    def markers(self, shards: list[str]) -> list[dict]:
        return [parse_json(self.read(name), self.where(name)) for name in (str(Path(s).with_suffix(".json")) for s in shards)]

    def with_reader(self, records: Records) -> Records:
        """The records as the loaders read them (a URL store attaches its shard cache)."""
        return records

    def manifest(self) -> str:
        return self.where(MANIFEST)

    def splits(self) -> list[str]:
        return list(self.index["splits"])

    def split(self, split: str) -> dict:
        if split not in self.index["splits"]:
            raise FileNotFoundError(f"store {self.root}: no '{split}' split (it has {', '.join(self.splits())})")
        return self.index["splits"][split]

    def classes(self, split: str) -> list[str]:
        self.split(split)
        return self.wnids

    def records(self, split: str) -> Records:
        if not self.split(split)["images"]:
            raise ValueError(f"store {self.root}: the '{split}' split holds no image (see {self.manifest()})")
        shards = self.split(split)["shards"]
        parts = [shard_records(self.wnids, self.where(s), m) for s, m in zip(shards, self.markers(shards))]
        return self.with_reader(Records.concat(parts))

    def files(self, split: str) -> list[str]:
        return [self.where(shard) for shard in self.split(split)["shards"]]

    def source_fingerprint(self, split: str) -> str | None:
        """The fingerprint of the files this split was prepared from (None: a store older than that record)."""
        return self.split(split).get("source", {}).get("fingerprint")

    def names_of(self, classes: list[str]) -> list[str]:
        names = dict(zip(self.wnids, self.names))
        return [names.get(c, c) for c in classes]

    def unreadable(self, split: str) -> int:
        return self.index["splits"][split]["unreadable"]


def check_prepared_from(store: StoreSource, source, splits: list[str]) -> None:
    """Stops when ``store`` was not prepared from what ``source`` (``data.root``) holds now, naming the differences."""
    rerun = f"delete it and rerun python -m alexnet.data.prepare {source.root} {store.root}"
    for split in splits:
        ours, theirs = store.classes(split), source.classes(split)
        if ours != theirs:
            lacking, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
            what = "the same classes in another order"
            if lacking or extra:
                what = (
                    f"{len(lacking)} classes of data.root missing from the store ({few(lacking)}), "
                    f"{len(extra)} in the store that data.root lacks ({few(extra)})"
                )
            raise ValueError(
                f"data.root: the store {store.root} was prepared from other classes than {source.root} holds: {what}; {rerun}"
            )
    for split in splits:
        recorded = store.split(split).get("source")
        if recorded is None:
            log.warning("store %s predates source fingerprints: only its classes were compared with %s", store.root, source.root)
            return
        files = source.files(split)
        if fingerprint.listing(files, source.root, mtimes=False) != recorded["fingerprint"]:
            raise ValueError(
                f"data.root: the store {store.root} was prepared from other '{split}' images than {source.root} "
                f"holds now ({recorded['files']} files then, {len(set(files))} now, or other names or sizes); {rerun}"
            )


def few(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "") if names else "none"
