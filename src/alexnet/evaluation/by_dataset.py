"""Measured ablation tables on any dataset: finished runs grouped by what they trained on and how.

A group is one dataset (the ``data`` config chosen, e.g. imagenette, and its root folder), one
test protocol (crops) and one setting: the overrides its runs share once the seed, the preset and
what cannot change a result (loggers, workers, figures, folders) are set aside. In a group each
preset is one row: runs, seeds, mean +- sample standard deviation (min-max) over them, and the difference
to the baseline preset with its standard error. So a ``-m 'experiment=alexnet_paper,ablation_x'
seed=1,2,3`` sweep on Imagenette is one table, labelled with its dataset, setting and run counts.
"""

import math
import os
from pathlib import Path
from statistics import mean, stdev

import yaml
from omegaconf import OmegaConf

from alexnet.data.check import CROSS_SPLIT
from alexnet.overrides import is_logistics, key_of
from alexnet.paths import RunDir, project_root

# A test error whose checkpoint was picked on the split it is tested on (test_checkpoint=best with
# data.val_split == data.test_split, as on ILSVRC-2012): biased low. Marked wherever a table shows
# it, explained once under the tables.
OWN_SPLIT_MARK = "†"
OWN_SPLIT_NOTE = (
    f"{OWN_SPLIT_MARK} selected on its own split: tested with the checkpoint of lowest validation error, on that "
    "same split (test_checkpoint=best, data.val_split == data.test_split), so biased low; the paper reports "
    "the last net (test_checkpoint=last)."
)


def own_split_mark(runs: list[dict]) -> str:
    """The mark when any of ``runs`` was tested with a checkpoint selected on its own test split."""
    return OWN_SPLIT_MARK if any(r.get("selected_on_test_split") for r in runs) else ""


# A test error of a run whose splits share byte-identical images (the start-of-run data check,
# alexnet.data.check): an image trained on and tested on again. Marked, explained once under the tables.
DUPLICATES_MARK = "‡"
DUPLICATES_NOTE = (
    f"{DUPLICATES_MARK} the run's splits share byte-identical images (summary.json `{CROSS_SPLIT}`, listed in the run "
    f"folder's {RunDir.DUPLICATES}): a test image also trained on may bias the error low."
)


def duplicates_mark(runs: list[dict]) -> str:
    """The mark when any of ``runs`` found images in more than one of its splits."""
    return DUPLICATES_MARK if any(r.get(CROSS_SPLIT) for r in runs) else ""


def marks(runs: list[dict]) -> str:
    """Every mark ``runs``' errors carry: own-split selection, cross-split duplicates."""
    return own_split_mark(runs) + duplicates_mark(runs)


# Besides the logistics, the group's other axes: its seeds, the preset and the dataset (by choice and root).
AXES = ("seed", "experiment", "data")


def dataset_of(run_dir: Path) -> dict:
    """The ``data`` config a run chose (Hydra's record) and its root folder, resolved; None where unknown."""
    run = RunDir(run_dir)
    name = root = None
    try:
        name = yaml.safe_load(run.hydra.read_text())["hydra"]["runtime"]["choices"].get("data")
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        pass
    try:
        raw = OmegaConf.select(run.read_config(), "data.root", throw_on_resolution_failure=True)
        root = str(Path(raw).resolve()) if raw else None
    except Exception:  # noqa: BLE001 - a config that no longer resolves: the dataset is only known by name
        pass
    return {"name": name, "root": root}


def shown_root(root: str | None) -> str:
    if not root:
        return "root unknown"
    relative = os.path.relpath(root, project_root())
    return relative if relative.count("..") <= 1 else root


def setting_of(run: dict) -> tuple[str, ...]:
    return tuple(sorted(o for o in run.get("overrides") or [] if not (is_logistics(o) or key_of(o) in AXES)))


def tested(run: dict) -> bool:
    return run.get("status") == "finished" and "test/top1_err" in run and "test/top5_err" in run


def groups(runs: list[dict]) -> dict[tuple, list[dict]]:
    """(dataset name, root, test crops, setting) -> its finished, tested runs."""
    out: dict[tuple, list[dict]] = {}
    for run in filter(tested, runs):
        data = run.get("data") or {}
        key = (data.get("name") or "unknown", data.get("root"), run.get("test_crops"), setting_of(run))
        out.setdefault(key, []).append(run)
    return out


def spread(values: list[float]) -> str:
    """mean +- sample std (min-max) in %; the value alone for one run."""
    m = 100 * mean(values)
    if len(values) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ± {100 * stdev(values):.1f} ({100 * min(values):.1f}-{100 * max(values):.1f})"


def delta(ablated: list[float], base: list[float]) -> str:
    """Difference of the means (points) +- its standard error, when both sides have several seeds."""
    d = round(100 * (mean(ablated) - mean(base)), 1) + 0.0  # never "-0.0"
    if len(ablated) > 1 and len(base) > 1:
        se = 100 * math.sqrt(stdev(ablated) ** 2 / len(ablated) + stdev(base) ** 2 / len(base))
        return f"{d:+.1f} ± {se:.1f}"
    return f"{d:+.1f}"


def table(runs: list[dict], base: str, paper: dict[str, tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """One row per preset: the baseline first, then the paper's ablations in ``paper``'s order, then the rest."""
    header = [
        "Preset",
        "runs",
        "seeds",
        "Top-1 err (%)",
        "Top-5 err (%)",
        f"Top-1 delta vs {base}",
        f"Top-5 delta vs {base}",
        "paper delta (top-1 / top-5)",
    ]
    by_preset: dict[str, list[dict]] = {}
    for run in runs:
        by_preset.setdefault(str(run.get("experiment")), []).append(run)
    order = [base, *paper, *sorted(by_preset)]
    rows = []
    for preset in dict.fromkeys(p for p in order if p in by_preset):
        group = by_preset[preset]
        top1, top5 = ([r[f"test/{k}_err"] for r in group] for k in ("top1", "top5"))
        seeds = ", ".join(str(s) for s in sorted({r.get("seed") for r in group}, key=str))
        if preset != base and base in by_preset:
            base1, base5 = ([r[f"test/{k}_err"] for r in by_preset[base]] for k in ("top1", "top5"))
            d1, d5 = delta(top1, base1), delta(top5, base5)
        else:
            d1 = d5 = ""
        paper_delta = " / ".join(paper[preset]) if preset in paper else ""
        mark = marks(group)
        rows.append([preset, str(len(group)), seeds, spread(top1) + mark, spread(top5) + mark, d1, d5, paper_delta])
    return header, rows


def measured_tables(runs: list[dict], base: str, paper: dict[str, tuple[str, str]]) -> list[tuple[str, str, tuple]]:
    """(file stem, title, (header, rows)) per group, largest groups first."""
    out = []
    ranked = sorted(groups(runs).items(), key=lambda kv: (-len(kv[1]), kv[0][0], str(kv[0][1])))
    for i, ((name, root, crops, setting), group) in enumerate(ranked):
        crop = {10: "ten-crop", 1: "centre-crop"}.get(crops, f"{crops}-crop")
        runs_ = f"{len(group)} finished run{'s' if len(group) > 1 else ''}"
        title = (
            f"Measured on {name} ({shown_root(root)}): {crop} test error (%), {runs_}\n\n"
            f"Setting (overrides shared by these runs): `{' '.join(setting) or 'none'}`. Mean ± sample std (min-max) over seeds; "
            f"delta = preset minus {base} in points (> 0: the component helps) ± its standard error."
        )
        out.append((f"measured_{name}_{i}", title, table(group, base, paper)))
    return out
