"""eval.py / alexnet.evaluation.evaluate: one checkpoint or an ensemble, ten-crop or centre crop, streamed.

The two members are real (tiny) training runs, as `python train.py -m seed=1,2` lays them out
(<sweep>/0, <sweep>/1), two steps each, run in this process."""

import json
import shutil

import pytest
import torch
from conftest import fixture_dir, run_train, script, train_in_process
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from alexnet.evaluation.evaluate import evaluate
from alexnet.exit_codes import ExitCode
from alexnet.paths import RunDir
from alexnet.training.module import LitAlexNet

TWO_STEPS = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "data.batch_size=8",
    "data.num_workers=0",
    "logger=none",
]


@pytest.fixture(scope="module")
def sweep(request):
    tmp = fixture_dir(request, "eval")
    sweep = tmp / "sweep"
    for job, seed in enumerate((1, 2)):
        data = [f"data.root={tmp}/synthetic", "data.train_per_class=6", "data.val_per_class=2"]
        train_in_process(sweep / str(job), f"seed={seed}", *data, *TWO_STEPS)
    return sweep


def hand_computed(sweep, crops: int) -> tuple[list[float], float, float]:
    """Per-member top-1 error and ensemble top-1 / top-5 error, one image at a time, by hand."""
    cfg = RunDir(sweep / "0").read_config()
    data = instantiate({**OmegaConf.to_container(cfg.data, resolve=True), "num_workers": 0})
    data.setup("test")
    nets = [LitAlexNet.load_from_checkpoint(sweep / j / "checkpoints" / "last.ckpt", map_location="cpu").net.eval() for j in "01"]
    wrong, ens1, ens5 = [0, 0], 0, 0
    dataset = data.datasets["val"]
    with torch.no_grad():
        for i in range(len(dataset)):
            image, label = dataset[i]
            x = data.augment.eval_batch(image[None], crops).reshape(-1, 3, data.crop_size, data.crop_size)
            # softmax of each crop, averaged over the crops, then over the members
            probs = [torch.softmax(net(x), dim=1).mean(0) for net in nets]
            for m, p in enumerate(probs):
                wrong[m] += int(p.argmax() != label)
            mean = (probs[0] + probs[1]) / 2
            ens1 += int(mean.argmax() != label)
            ens5 += int(label not in mean.topk(5).indices.tolist())
    n = len(dataset)
    return [w / n for w in wrong], ens1 / n, ens5 / n


def test_ensemble_of_two_matches_hand_computation(sweep):
    results = evaluate([str(sweep)], split="val", crops=10, batch_size=7)
    members, ens1, ens5 = hand_computed(sweep, 10)
    assert [m["top1_err"] for m in results["members"]] == pytest.approx(members)
    assert results["ensemble"]["top1_err"] == pytest.approx(ens1)
    assert results["ensemble"]["top5_err"] == pytest.approx(ens5)
    assert results["ensemble"]["size"] == 2 and results["images"] == 20 and results["crops"] == 10
    # The runs' own ten-crop test (Lightning + torchmetrics on the same checkpoint) agrees per member.
    for member, job in zip(results["members"], "01"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert member["top1_err"] == pytest.approx(summary["test/top1_err"])
        assert member["top5_err"] == pytest.approx(summary["test/top5_err"])
        assert member["seed"] == int(job) + 1 and member["checkpoint"] == str(sweep / job / summary["test_checkpoint"])


def test_runs_end_with_figures_3_and_4_in_their_folder(sweep):
    summary = json.loads((sweep / "0" / "summary.json").read_text())
    names = ["conv1_filters.png", "top5.png", "neighbours.png"]
    assert summary["figures"] == [f"figures/{n}" for n in names]  # relative to the run folder
    for name in names:
        with Image.open(sweep / "0" / "figures" / name) as image:
            assert image.format == "PNG"


def test_batch_size_does_not_change_the_result(sweep):
    a = evaluate([str(sweep)], crops=1, batch_size=4)
    b = evaluate([str(sweep / "0"), str(sweep / "1" / "checkpoints" / "last.ckpt")], crops=1, batch_size=30)
    assert a["ensemble"] == b["ensemble"] and a["data_fingerprint"] == b["data_fingerprint"]
    assert a["members"][0]["top1_err"] == b["members"][0]["top1_err"]


def test_unfinished_jobs_are_skipped_and_reported(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("*.ckpt"))
    for job in "01":  # checkpoints by link: the copy stays small
        (copy / job / "checkpoints" / "last.ckpt").symlink_to(sweep / job / "checkpoints" / "last.ckpt")
    summary = json.loads((copy / "1" / "summary.json").read_text())
    (copy / "1" / "summary.json").write_text(json.dumps({**summary, "status": "failed", "error": "boom"}))
    results = evaluate([str(copy)], crops=1)
    assert results["ensemble"]["size"] == 1
    assert results["skipped"] == [{"run_dir": str(copy / "1"), "status": "failed"}]


def test_eval_py_writes_results_json(sweep, tmp_path):
    out = tmp_path / "results.json"
    proc = run_train(str(sweep), "--crops", "1", "--num-workers", "0", "--out", str(out), script="eval.py", timeout=300)
    results = json.loads(out.read_text())
    assert results["crops"] == 1 and results["split"] == "val" and len(results["data_fingerprint"]) == 64
    tested = [str(sweep / j / json.loads((sweep / j / "summary.json").read_text())["test_checkpoint"]) for j in "01"]
    assert [m["checkpoint"] for m in results["members"]] == tested
    assert {"top1_err", "top5_err"} <= set(results["ensemble"]) and "ensemble of 2" in proc.stdout


def test_eval_py_names_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:  # eval.py's main in this process
        script("eval.py").main([str(tmp_path / "nope.ckpt")])
    err = capsys.readouterr().err
    assert exit.value.code == ExitCode.CONFIG_ERROR and "nope.ckpt" in err and "Traceback" not in err


def test_a_copied_run_folder_evaluates_its_own_tested_checkpoint(sweep, tmp_path, capsys):
    """cp -a runs/R /backup/R, then runs/R deleted: eval.py and predict.py on the copy use the
    copy's tested checkpoint, from a summary of relative paths or one of the absolute paths older
    summaries hold; a tested checkpoint missing from the copy is named, with what stands in for it."""
    from alexnet.evaluation.evaluate import find_members
    from alexnet.evaluation.predict import Predictor

    origin, backup = tmp_path / "runs" / "R", tmp_path / "backup" / "R"
    summary = json.loads((sweep / "0" / "summary.json").read_text())
    tested = "checkpoints/epoch000.ckpt"  # as test_checkpoint=best records it: not last.ckpt
    for recorded in (str(origin / tested), tested):  # an older summary, then a new one
        shutil.copytree(sweep / "0", origin, ignore=shutil.ignore_patterns("*.ckpt"))
        for ckpt in ("epoch000.ckpt", "last.ckpt"):  # by link: the copies stay small
            (origin / "checkpoints" / ckpt).symlink_to(sweep / "0" / "checkpoints" / ckpt)
        RunDir(origin).write_summary({**summary, "test_checkpoint": recorded, "run_dir": str(origin)})
        shutil.copytree(origin, backup, symlinks=True)
        shutil.rmtree(origin)
        [member], _ = find_members([str(backup)])
        assert (member.checkpoint, member.warning) == (backup / tested, None), recorded
        predictor = Predictor(str(backup), device="cpu")
        assert (predictor.checkpoint, predictor.warnings) == (backup / tested, []), recorded
        if recorded != tested:
            shutil.rmtree(backup)  # the new summary's copy is kept for the rest

    (backup / tested).unlink()
    last = backup / "checkpoints" / "last.ckpt"
    warning = f"{backup}/summary.json: the tested checkpoint {backup / tested} is missing; using {last} instead"
    assert Predictor(str(backup), device="cpu").warnings == [warning]
    out = tmp_path / "results.json"
    script("eval.py").main([str(backup), "--crops", "1", "--num-workers", "0", "--device", "cpu", "--out", str(out)])
    assert [line for line in capsys.readouterr().err.splitlines() if "warning" in line] == [f"eval warning: {warning}"]
    results = json.loads(out.read_text())
    assert results["members"][0]["checkpoint"] == str(last) and results["warnings"] == [warning]
