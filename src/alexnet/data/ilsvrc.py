"""The official ILSVRC archives as users download them, read in place.

- ``ILSVRC2012_img_train.tar``: one inner tar per synset (``n01440764.tar``), 1.28M JPEGs;
- ``ILSVRC2012_img_val.tar``: 50k flat JPEGs ``ILSVRC2012_val_00000001.JPEG`` ...;
- the devkit ``ILSVRC2012_devkit_t12.tar.gz``: ``data/meta.mat`` (the synsets, with their
  ILSVRC ids) and ``data/ILSVRC2012_validation_ground_truth.txt`` (one ILSVRC id per val image,
  in file-name order). ILSVRC ids are NOT the class index: class index = sorted-wnid position.

ILSVRC-2010 is the same with ``ILSVRC2010_images_{train,val,test}.tar``, its devkit and
``ILSVRC2010_{validation,test}_ground_truth.txt`` (the test labels are public for 2010).

The devkit is read the way ``torchvision.datasets.imagenet.parse_devkit_archive`` reads it
(leaf synsets are those with ``num_children == 0``; fields by position, so both years' field
names work). That function itself cannot be called here: it accepts only the 2012 devkit's
exact file name and md5, writes ``meta.bin`` beside the archives (often read-only), and its
``parse_train_archive`` extracts all 140 GB; here the tars are read in place (``tarindex``).
"""

import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from alexnet.data import tarindex
from alexnet.data.cache import CacheFolder
from alexnet.data.records import Records

ARCHIVE = re.compile(r"ILSVRC(20\d\d)_(?:img|images)_(train|val|test)\.tar$")
DEVKIT = re.compile(r"ILSVRC(20\d\d)_devkit.*")
GROUND_TRUTH = re.compile(r"ILSVRC(20\d\d)_(validation|test)_ground_truth\.txt$")
GT_SPLIT = {"validation": "val", "test": "test"}


@dataclass
class Devkit:
    wnids: list[str]  # the leaf synsets, sorted: the class index
    names: dict[str, str]  # wnid -> "tench, Tinca tinca"
    by_ilsvrc_id: dict[int, str]  # ILSVRC id -> wnid
    ground_truth: dict[str, list[int]]  # split -> ILSVRC id of each image, in file-name order


def find_archives(root: Path) -> dict[str, Path]:
    return {m.group(2): p for p in sorted(Path(root).iterdir()) if (m := ARCHIVE.match(p.name))}


def find_devkit(root: Path) -> Path | None:
    found = [p for p in sorted(Path(root).iterdir()) if DEVKIT.match(p.name) and not p.name.endswith((".index.tsv", ".md5"))]
    return found[0] if found else None


def devkit_files(devkit: Path) -> dict[str, bytes]:
    """meta.mat and the ground-truth files of a devkit, from its .tar.gz or an extracted folder."""
    wanted = lambda name: name == "meta.mat" or GROUND_TRUTH.match(name)  # noqa: E731
    if devkit.is_dir():
        return {p.name: p.read_bytes() for p in devkit.rglob("*") if p.is_file() and wanted(p.name)}
    with tarfile.open(devkit) as tar:
        return {Path(m.name).name: tar.extractfile(m).read() for m in tar if m.isfile() and wanted(Path(m.name).name)}


def parse_meta_mat(data: bytes) -> tuple[dict[int, str], dict[str, str]]:
    import scipy.io

    synsets = scipy.io.loadmat(io.BytesIO(data), squeeze_me=True)["synsets"]
    # Fields by position: ILSVRC20xx_ID, WNID, words, gloss, num_children, ... (as torchvision reads them).
    leaves = [s for s in synsets if int(s[4]) == 0]
    return {int(s[0]): str(s[1]) for s in leaves}, {str(s[1]): str(s[2]) for s in leaves}


def read_devkit(devkit: Path, extra_dir: Path | None = None) -> Devkit:
    """``extra_dir``: where a separately downloaded ground truth may sit (ILSVRC-2010's test labels)."""
    files = devkit_files(devkit)
    if extra_dir is not None:
        files.update(
            {p.name: p.read_bytes() for p in Path(extra_dir).iterdir() if GROUND_TRUTH.match(p.name) and p.name not in files}
        )
    if "meta.mat" not in files:
        raise FileNotFoundError(f"{devkit}: no data/meta.mat in the devkit")
    by_id, names = parse_meta_mat(files["meta.mat"])
    ground_truth = {
        GT_SPLIT[m.group(2)]: [int(v) for v in data.decode().split()]
        for name, data in files.items()
        if (m := GROUND_TRUTH.match(name))
    }
    return Devkit(sorted(names), names, by_id, ground_truth)


def train_records(archive: Path, devkit: Devkit, cache: CacheFolder) -> Records:
    """Labels from the inner tar's name (``n01440764.tar``), or from the folder or file-name prefix
    for a train tar that holds the JPEGs directly."""
    index = {w: i for i, w in enumerate(devkit.wnids)}
    members = []
    for name, offset, size in tarindex.cached_scan(archive, cache, nested=True):
        parts = name.split("/")
        wnid = parts[-2] if len(parts) > 1 and parts[-2] in index else parts[-1].split("_")[0]
        if wnid not in index:
            raise ValueError(f"{archive}: member {name}: synset {wnid} is not among the devkit's {len(index)} classes")
        members.append((name, offset, size, index[wnid]))
    return Records.of_members(devkit.wnids, str(archive), members)


def labelled_records(archive: Path, split: str, devkit: Devkit, cache: CacheFolder) -> Records:
    """val/test: flat JPEGs whose labels are the devkit's ground truth, line k = k-th file by name."""
    if split not in devkit.ground_truth:
        raise FileNotFoundError(
            f"{archive}: no ILSVRC20xx_{'validation' if split == 'val' else split}_ground_truth.txt in the devkit or beside it"
        )
    truth = devkit.ground_truth[split]
    members = sorted(tarindex.cached_scan(archive, cache))
    if len(members) != len(truth):
        raise ValueError(f"{archive}: {len(members)} images but the {split} ground truth lists {len(truth)}")
    index = {w: i for i, w in enumerate(devkit.wnids)}
    unknown = sorted({t for t in truth if t not in devkit.by_ilsvrc_id})
    if unknown:
        raise ValueError(
            f"{archive}: the {split} ground truth uses ILSVRC ids {unknown[:5]} that meta.mat does not list as leaf synsets"
        )
    labelled = [(name, offset, size, index[devkit.by_ilsvrc_id[t]]) for (name, offset, size), t in zip(members, truth)]
    return Records.of_members(devkit.wnids, str(archive), labelled)
