"""The end-of-prepare check: every planned image is in exactly one shard or in the manifest,
each shard's tar matches its done marker byte for byte, and the counts per class add up."""

import json
import math
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path


class StoreError(ValueError):
    pass


def verify_shard(tar: Path, marker: dict) -> None:
    if not tar.exists():
        raise StoreError(f"{tar}: missing although its done marker exists")
    if tar.stat().st_size != marker["tar_bytes"]:
        raise StoreError(f"{tar}: {tar.stat().st_size} bytes, its marker says {marker['tar_bytes']}")
    with tarfile.open(tar, "r:") as t:
        found = {m.name: (m.offset_data, m.size) for m in t if m.isfile()}
    expected = {f"{m['key']}.jpg": (m["offset"], m["size"]) for m in marker["members"]}
    if {k: v for k, v in found.items() if k.endswith(".jpg")} != expected or len(found) != 2 * len(expected):
        raise StoreError(f"{tar}: its members differ from its marker {tar.with_suffix('.json').name}")


def verify_store(out: Path, splits: list[str], planned: dict[str, int], classes: list[str], shard_size: int) -> dict:
    """A store in the folder ``out``: each shard's tar read against its done marker."""

    def checked_marker(shard: Path) -> dict:
        marker_path = (out / shard).with_suffix(".json")
        if not marker_path.exists():
            raise StoreError(f"{marker_path}: missing: the shard was not completed (rerun prepare to finish it)")
        marker = json.loads(marker_path.read_text())
        verify_shard(out / shard, marker)
        return marker

    return summarize(splits, planned, classes, shard_size, checked_marker)


def summarize(
    splits: list[str], planned: dict[str, int], classes: list[str], shard_size: int, checked_marker: Callable[[Path], dict]
) -> dict:
    """Every planned shard's marker (``checked_marker``: found and its shard checked, else ``StoreError``),
    every planned image stored once or listed as unreadable, and the counts per class."""
    summary = {}
    for split in splits:
        n_shards = math.ceil(planned[split] / shard_size)
        shards = [Path(split) / f"shard-{n:06d}.tar" for n in range(n_shards)]
        per_class, converted, unreadable, ids, written = Counter(), Counter(), [], set(), 0
        for shard in shards:
            marker = checked_marker(shard)
            for m in marker["members"]:
                if m["id"] in ids:
                    raise StoreError(f"{split}: image {m['id']} stored twice (last in {shard})")
                if not 0 <= m["label"] < len(classes):
                    raise StoreError(f"{shard}: label {m['label']} out of range for {len(classes)} classes")
                ids.add(m["id"])
                per_class[m["label"]] += 1
            written += len(marker["members"])
            unreadable += marker["unreadable"]
            converted.update(marker["converted"])
        if written + len(unreadable) != planned[split]:
            raise StoreError(f"{split}: {written} stored + {len(unreadable)} unreadable != {planned[split]} planned")
        summary[split] = {
            "shards": [str(s) for s in shards],
            "images": written,
            "unreadable": len(unreadable),
            "unreadable_list": unreadable,
            "per_class": [per_class[i] for i in range(len(classes))],
            "converted": dict(converted),
        }
    return summary
