"""The paper's Tables 1 and 2 and its ablation deltas, measured, beside the paper's numbers.

    python -m alexnet.evaluation.tables outputs/ [--out outputs/tables] [--wandb ENTITY/PROJECT]

Collects every run's summary.json (single nets: their ten-crop test errors), every eval.py
results.json (ensembles) and every fig1.json (figure 1) under the folders given, and writes
tables.md plus one CSV per table.
Only finished runs count; failed, interrupted and incomplete ones are listed, never averaged in.
Several finished runs of one preset (seeds) are averaged, and their number is shown.
The paper's tables take only runs on ILSVRC (``data=imagenet`` / ``ilsvrc2010``); runs on any
other dataset (Imagenette, the synthetic set, a folder) fill measured tables of their own, one per
dataset and setting (``alexnet.evaluation.by_dataset``). Reference results of other
reimplementations, with their protocols, are printed under the paper's.
"""

import argparse
import csv
import json
import logging
import os
from collections import Counter
from pathlib import Path
from statistics import mean

import yaml

from alexnet.data.check import CROSS_SPLIT
from alexnet.evaluation import by_dataset
from alexnet.paths import RunDir

log = logging.getLogger(__name__)

# Error rates in %, from the paper (None: not reported). Table 1: ILSVRC-2010 test set.
TABLE1 = [
    ("Sparse coding [2]", 47.1, 28.2, None),
    ("SIFT + FVs [24]", 45.7, 25.7, None),
    ("CNN", 37.5, 17.0, "alexnet_ilsvrc2010"),
]
# Table 2: ILSVRC-2012 (top-1 val, top-5 val, top-5 test); what measures each row.
TABLE2 = [
    ("SIFT + FVs [7]", None, None, 26.2, None),
    ("1 CNN", 40.7, 18.2, None, "alexnet_paper"),
    ("5 CNNs", 38.1, 16.4, 16.4, {"alexnet_paper": 5}),
    ("1 CNN*", 39.0, 16.6, None, "alexnet_star_finetune"),
    ("7 CNNs*", 36.7, 15.4, 15.3, {"alexnet_paper": 5, "alexnet_star_finetune": 2}),
]
# How much each component lowers top-1 / top-5 error (sections 3.3, 3.4, 4.1, 3.2); None: no number.
ABLATIONS = [
    ("ablation_no_lrn", "response normalisation (3.3)", 1.4, 1.2),
    ("ablation_no_overlap_pool", "overlapping pooling (3.4)", 0.4, 0.3),
    ("ablation_no_pca", "PCA colour noise (4.1), 'over 1%'", 1.0, None),
    ("ablation_1gpu", "two-GPU net vs one-GPU net (3.2)", 1.7, 1.2),
    ("ablation_no_dropout", "dropout (4.2)", None, None),
    ("ablation_tanh", "ReLU vs tanh (3.1; figure 1 is CIFAR-10)", None, None),
]
BASE = "alexnet_paper"
# ILSVRC-2012 validation error (%) of single AlexNets, each with its protocol and source. The paper's
# single nets are ten-crop ("averaging the predictions ... on the ten patches", section 4.1; on
# ILSVRC-2010 the centre crop alone gave 39.0 / 18.3 instead of 37.5 / 17.0, section 6).
REFERENCES = [
    (
        "paper: 1 CNN",
        40.7,
        18.2,
        "ten 224 crops (corners, centre, reflections) of 256x256; per-pixel mean; N(0, 0.01), biases 1; PCA colour noise; "
        "~90 epochs",
        "Krizhevsky et al., NIPS 2012, Table 2",
    ),
    (
        "Caffe bvlc_alexnet",
        42.9,
        19.8,
        "centre 227 crop of 256x256; mean image; N(0, 0.01), fc6/fc7 N(0, 0.005), biases 0.1; "
        "no PCA colour noise; 360k iterations",
        "BVLC/caffe models/bvlc_alexnet/readme.md: top-1 accuracy 57.1%, top-5 80.2%, 'using just the center crop'",
    ),
    (
        "torchvision alexnet",
        43.48,
        20.93,
        "centre 224 crop of shorter side 256; per-channel mean/std; one-GPU 'one weird trick' net (64/192/384/256/256 kernels, "
        "no LRN, no groups); PyTorch's default init",
        "pytorch/vision torchvision/models/alexnet.py, AlexNet_Weights.IMAGENET1K_V1: acc@1 56.522, acc@5 79.066 "
        "(its older docs table: 43.45 / 20.91, 1-crop)",
    ),
]
# The data configs (conf/data/) of the paper's datasets: only their runs fill the paper's tables.
PAPER_DATA = {None, "imagenet", "ilsvrc2010"}
# The presets whose runs the tables use: only their failed or unfinished runs are listed as not
# counted, and every run whose summary.json cannot be read.
TABLE_PRESETS = {BASE, "alexnet_star_finetune", "alexnet_ilsvrc2010"} | {a[0] for a in ABLATIONS}
UNREADABLE = "unreadable summary"
# What the tables read from a summary.json, and the types they need: its metrics are numbers.
METRIC_PREFIXES = ("train/", "val/", "test/", "best/")
SUMMARY_TYPES = {
    "status": (str,),
    "experiment": (str, type(None)),
    "test_crops": (int,),
    "selected_on_test_split": (bool,),
    "overrides": (list, type(None)),
    "error": (str, type(None)),
    "message": (str, type(None)),
}


def collect(folders: list[Path]) -> tuple[list[dict], list[dict], list[dict]]:
    """Run summaries (one per run folder, incomplete ones included), eval results and figure 1 results under ``folders``."""
    runs, evals, fig1 = [], [], []
    for folder in folders:
        for config in sorted(folder.rglob(RunDir.CONFIG)):
            run = RunDir(config.parent.parent)
            try:
                summary = run.read_summary()
                wrong = wrong_value(summary) if summary is not None else None
                if wrong:
                    raise ValueError(f"{run.summary}: not a valid summary ({wrong}); delete it or rerun the job")
            except ValueError as err:  # a corrupt summary.json: named, listed as such, never averaged in
                log.warning(f"{err} (left out of the tables)")
                summary = {"status": f"{UNREADABLE} ({err})"}
            if summary is None:
                summary = {"status": f"incomplete (no {RunDir.SUMMARY})"}
            summary.setdefault("experiment", preset_of(run.path))
            summary["data"] = by_dataset.dataset_of(run.path)
            wandb = run.wandb_id.read_text().strip() if run.wandb_id.exists() else None
            runs.append({**summary, "run_dir": str(run.path), "wandb_id": wandb})
        for path in sorted(folder.rglob("results.json")):
            results = read_json(path)
            if results is not None:
                evals.append({**results, "path": str(path), "mtime": path.stat().st_mtime})
        fig1 += [{**results, "path": str(path)} for path in sorted(folder.rglob("fig1.json")) if (results := read_json(path))]
    return runs, evals, fig1


def wrong_value(summary: dict) -> str | None:
    """The first value of a summary that the tables cannot use, described; None when every one is usable."""
    for key, value in summary.items():
        if key.startswith(METRIC_PREFIXES):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{key} is {value!r}, not a number"
        elif key in SUMMARY_TYPES and not isinstance(value, SUMMARY_TYPES[key]):
            return f"{key} is {value!r}, not {' or '.join(t.__name__ for t in SUMMARY_TYPES[key])}"
    if not all(isinstance(o, str) for o in summary.get("overrides") or []):
        return f"overrides is {summary['overrides']!r}, not a list of strings"
    return None


def read_json(path: Path) -> dict | None:
    """An eval or figure 1 result, or None (named in a warning) when the file is corrupt: one bad file never stops the tables."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning(f"{path}: unreadable, left out of the tables ({err}); delete it or rerun what wrote it")
        return None
    if not isinstance(data, dict):
        log.warning(f"{path}: not a results object (a JSON {type(data).__name__}), left out of the tables")
        return None
    return data


def preset_of(run_dir: Path) -> str | None:
    """The experiment preset a run was started with, from Hydra's record (for runs that left no summary)."""
    try:
        hydra = yaml.safe_load(RunDir(run_dir).hydra.read_text())
        return hydra["hydra"]["runtime"]["choices"].get("experiment")
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def wandb_runs(project: str, known_ids: set) -> list[dict]:
    """Runs of a W&B project as summaries, when an API key is set; never blocks the tables."""
    if not os.environ.get("WANDB_API_KEY"):
        log.warning("W&B: no WANDB_API_KEY, reading local run folders only")
        return []
    try:
        import wandb

        runs = []
        presets = {a[0] for a in ABLATIONS} | {BASE, "alexnet_star_finetune", "alexnet_ilsvrc2010"}
        for r in wandb.Api(timeout=15).runs(project):
            if r.id in known_ids:  # already read from its local run folder
                continue
            status = {"finished": "finished", "running": "incomplete (running)", "killed": "interrupted"}.get(r.state, "failed")
            picked = ("selected_on_test_split", CROSS_SPLIT)
            summary = {k: v for k, v in dict(r.summary).items() if k.startswith("test/") or k in picked}
            runs.append(
                {
                    **summary,
                    "status": status,
                    "experiment": next((t for t in r.tags if t in presets), None),
                    "seed": r.config.get("seed"),
                    "test_crops": (r.config.get("data") or {}).get("test_crops"),
                    "run_dir": r.url,
                }
            )
        return runs
    except Exception as err:  # offline, bad key, unknown project: the local tables still stand
        log.warning(f"W&B: not read ({type(err).__name__}: {err})")
        return []


def counted(run: dict) -> bool:
    """A run counts when it finished and was tested on the paper's ten crops."""
    tested = "test/top1_err" in run and "test/top5_err" in run
    return run.get("status") == "finished" and tested and run.get("test_crops", 10) == 10


def not_counted_reason(run: dict) -> str:
    if run.get("status") != "finished":
        return str(run.get("status"))
    if "test/top1_err" not in run:
        return "finished without test metrics (test=false or fast_dev_run)"
    return f"tested on {run.get('test_crops')} crop(s), not the paper's ten (data.test_crops)"


def single(runs: list[dict], experiment: str) -> tuple[float | None, float | None, list[str], str]:
    """Mean test top-1 / top-5 error (%) over the finished runs of one preset, their folders, and
    the marks their errors carry (``by_dataset.marks``)."""
    done = [
        r for r in runs if r.get("experiment") == experiment and counted(r) and (r.get("data") or {}).get("name") in PAPER_DATA
    ]
    if not done:
        return None, None, [], ""
    top1, top5 = (100 * mean(r[f"test/{k}_err"] for r in done) for k in ("top1", "top5"))
    return top1, top5, [r["run_dir"] for r in done], by_dataset.marks(done)


def ensemble(evals: list[dict], members: dict) -> tuple[float | None, float | None, list[str]]:
    """The latest ten-crop evaluation whose members are exactly ``members`` (preset -> count)."""
    matches = [
        e for e in evals if e.get("crops") == 10 and Counter(m.get("experiment") for m in e["members"]) == Counter(members)
    ]
    if not matches:
        return None, None, []
    latest = max(matches, key=lambda e: e["mtime"])
    return 100 * latest["ensemble"]["top1_err"], 100 * latest["ensemble"]["top5_err"], [latest["path"]]


def cells(paper: float | None, measured: float | None, mark: str = "") -> list[str]:
    """paper, measured (and its mark), measured - paper; '' where there is nothing to show."""
    p = "" if paper is None else f"{paper:.1f}"
    m = "" if measured is None else f"{measured:.1f}{mark}"
    # The difference of the numbers as shown (one decimal, as the paper prints them); never "-0.0".
    d = "" if paper is None or measured is None else f"{round(round(measured, 1) - paper, 1) + 0.0:+.1f}"
    return [p, m, d]


def table1(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["Model", "Top-1 paper", "Top-1 measured", "Top-1 diff", "Top-5 paper", "Top-5 measured", "Top-5 diff", "runs"]
    rows = []
    for model, top1, top5, experiment in TABLE1:
        m1, m5, sources, mark = single(runs, experiment) if experiment else (None, None, [], "")
        rows.append([model, *cells(top1, m1, mark), *cells(top5, m5, mark), str(len(sources)) if experiment else ""])
    return header, rows


def table2(runs: list[dict], evals: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = [
        "Model",
        "Top-1 (val) paper",
        "measured",
        "diff",
        "Top-5 (val) paper",
        "measured",
        "diff",
        "Top-5 (test) paper",
        "measured",
        "diff",
        "runs",
    ]
    rows = []
    for model, top1, top5, top5_test, source in TABLE2:
        mark = ""
        if source is None:
            m1, m5, sources = None, None, []
        elif isinstance(source, str):
            m1, m5, sources, mark = single(runs, source)
        else:
            m1, m5, sources = ensemble(evals, source)
        # The test column needs the ILSVRC-2012 evaluation server: never measured here.
        rows.append(
            [model, *cells(top1, m1, mark), *cells(top5, m5, mark), *cells(top5_test, None), str(len(sources)) if source else ""]
        )
    return header, rows


def ablation_table(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Error without the component minus error with it (alexnet_paper), in points: > 0 means it helps."""
    header = [
        "Ablation",
        "Component",
        "Top-1 delta paper",
        "measured",
        "diff",
        "Top-5 delta paper",
        "measured",
        "diff",
        "runs (ablation/base)",
    ]
    b1, b5, base, base_mark = single(runs, BASE)
    rows = []
    for experiment, component, d1, d5 in ABLATIONS:
        a1, a5, ablated, mark = single(runs, experiment)
        m1 = a1 - b1 if a1 is not None and b1 is not None else None
        m5 = a5 - b5 if a5 is not None and b5 is not None else None
        mark = "".join(dict.fromkeys(mark + base_mark)) if m1 is not None else ""  # either side's marks, once each
        rows.append([experiment, component, *cells(d1, m1, mark), *cells(d5, m5, mark), f"{len(ablated)}/{len(base)}"])
    return header, rows


def reference_table() -> tuple[list[str], list[list[str]]]:
    header = ["Model", "Top-1 err", "Top-5 err", "Protocol", "Source"]
    return header, [[name, f"{t1:g}", f"{t5:g}", protocol, source] for name, t1, t5, protocol, source in REFERENCES]


def paper_deltas() -> dict[str, tuple[str, str]]:
    """The paper's ablation deltas as the measured tables show them: '+1.4', or '-' where it gives no number."""
    shown = lambda d: "-" if d is None else f"+{d:.1f}"  # noqa: E731
    return {experiment: (shown(d1), shown(d5)) for experiment, _, d1, d5 in ABLATIONS}


def not_counted_table(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["Run", "Experiment", "Status", "Error"]
    rows = [
        [r["run_dir"], str(r.get("experiment")), not_counted_reason(r), (r.get("error") or r.get("message") or "")[:200]]
        for r in runs
        if not counted(r) and (r.get("experiment") in TABLE_PRESETS or str(r.get("status")).startswith(UNREADABLE))
    ]
    return header, rows


def figure1_table(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Epochs to 25% training error (paper: ReLU six times faster than tanh), and at the lowest error both reached."""
    header = ["Run", "ReLU epochs", "tanh epochs", "speed-up (paper: 6x)", "at the lowest error both reached"]
    rows = []
    for r in results:
        epochs = {a: "" if e is None else f"{e:.2f}" for a, e in r["epochs_to_target"].items()}
        for a in epochs:
            epochs[a] = epochs[a] or f"> {r['epochs_run'][a]:g} (cap)"
        bound = ">= " if r.get("speedup_is_lower_bound") else ""
        speedup = f"{bound}{r['speedup']:.1f}x" if r.get("speedup") else ""
        c = r.get("common_level")
        common = (
            f"{c['train_err']:.1%}: {c['epochs']['relu']:.2f} vs {c['epochs']['tanh']:.2f} epochs, {c['speedup']:.1f}x"
            if c
            else ""
        )
        rows.append([str(Path(r["path"]).parent), epochs["relu"], epochs["tanh"], speedup, common])
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(values):
        return "| " + " | ".join(v.replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def render(runs: list[dict], evals: list[dict], out: Path, fig1: list[dict] = ()) -> str:
    """Writes tables.md and a CSV per table into ``out``; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "table1": ("Table 1: ILSVRC-2010 test set, error rates (%)", table1(runs)),
        "table2": ("Table 2: ILSVRC-2012, error rates (%); test column needs the evaluation server", table2(runs, evals)),
        "references": ("Reference single AlexNets: ILSVRC-2012 validation error (%), with their protocols", reference_table()),
        "ablations": (
            "Ablations: error without the component minus error with it (points; > 0: the component helps)",
            ablation_table(runs),
        ),
        **{stem: (title, rows) for stem, title, rows in by_dataset.measured_tables(runs, BASE, paper_deltas())},
        "figure1": ("Figure 1: epochs to 25% training error on CIFAR-10, ReLU vs tanh", figure1_table(list(fig1))),
        "not_counted": ("Runs not counted (failed, interrupted, incomplete or untested)", not_counted_table(runs)),
    }
    parts = [
        "Single nets: mean ten-crop test error over the finished ILSVRC runs of the preset (`runs`); "
        "ensembles: the latest ten-crop `eval.py` results.json with exactly those members; measured minus paper in `diff`."
    ]
    for name, (title, (header, rows)) in tables.items():
        with open(out / f"{name}.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        parts.append(f"## {title}\n\n{markdown(header, rows) if rows else '(none)'}")
    notes = {by_dataset.OWN_SPLIT_MARK: by_dataset.OWN_SPLIT_NOTE, by_dataset.DUPLICATES_MARK: by_dataset.DUPLICATES_NOTE}
    for mark, note in notes.items():
        if mark in "".join(parts[1:]):
            parts.append(note)
    text = "\n\n".join(parts) + "\n"
    (out / "tables.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Tables 1 and 2 and the ablation deltas, paper vs measured; "
        "a measured ablation table per dataset; reference results of other reimplementations"
    )
    parser.add_argument(
        "folders", nargs="*", type=Path, default=[Path("outputs")], help="where run folders and results.json live"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: <first folder>/tables")
    parser.add_argument(
        "--wandb", default=None, metavar="ENTITY/PROJECT", help="also read this W&B project (needs WANDB_API_KEY)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for folder in args.folders:
        if not folder.is_dir():
            parser.error(f"{folder}: no such folder")
    runs, evals, fig1 = collect(args.folders)
    if args.wandb:
        runs += wandb_runs(args.wandb, {r["wandb_id"] for r in runs if r.get("wandb_id")})
    out = args.out or args.folders[0] / "tables"
    print(render(runs, evals, out, fig1))
    print(f"written: {out / 'tables.md'} and {', '.join(sorted(p.name for p in out.glob('*.csv')))}")


if __name__ == "__main__":
    main()
