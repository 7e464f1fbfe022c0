"""The prepared store that ``python -m alexnet.data.prepare`` writes, and how it is read.

Layout (WebDataset tar shards, each with a JSON index of its members' byte offsets)::

    OUT/index.json                  written last: its presence means complete and verified
    OUT/unreadable.tsv              split, source image, reason: the manifest of what was left out
    OUT/<split>/shard-000000.tar    WebDataset samples: <key>.jpg (256x256 JPEG), <key>.cls (label)
    OUT/<split>/shard-000000.json   the shard's done marker: keys, labels, source ids, byte offsets

Any WebDataset reader streams the shards (``webdataset.WebDataset("OUT/train/shard-{000000..000099}.tar")``);
this project reads them by offset instead, as a map-style dataset: exact shuffling, a length,
and Lightning's distributed sampler, with no per-sample iterator overhead.
"""

import json
from pathlib import Path

from alexnet.data.records import Records

INDEX = "index.json"
FORMAT = "webdataset-shards+offsets"
VERSION = 1


def is_store(root: Path) -> bool:
    return (Path(root) / INDEX).is_file()


def read_index(root: Path) -> dict:
    index = json.loads((Path(root) / INDEX).read_text())
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ValueError(f"{root}/{INDEX}: not a store of format {FORMAT} v{VERSION} (rerun prepare into a new folder)")
    return index


def shard_records(classes: list[str], tar: Path, marker: dict) -> Records:
    members = [(m["id"], m["offset"], m["size"], m["label"]) for m in marker["members"]]
    return Records.of_members(classes, str(tar), members)


class StoreSource:
    kind = "store"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.index = read_index(self.root)
        self.classes: list[str] = self.index["classes"]
        self.names: list[str] = self.index["names"]
        self.resize: int = self.index["resize"]

    def splits(self) -> list[str]:
        return list(self.index["splits"])

    def records(self, split: str) -> Records:
        if split not in self.index["splits"]:
            raise FileNotFoundError(f"store {self.root}: no '{split}' split (it has {', '.join(self.splits())})")
        parts = []
        if not self.index["splits"][split]["images"]:
            raise ValueError(f"store {self.root}: the '{split}' split holds no image (see {self.root}/unreadable.tsv)")
        for shard in self.index["splits"][split]["shards"]:
            marker = json.loads((self.root / shard).with_suffix(".json").read_text())
            parts.append(shard_records(self.classes, self.root / shard, marker))
        return Records.concat(parts)

    def names_of(self, classes: list[str]) -> list[str]:
        names = dict(zip(self.classes, self.names))
        return [names.get(c, c) for c in classes]

    def unreadable(self, split: str) -> int:
        return self.index["splits"][split]["unreadable"]
