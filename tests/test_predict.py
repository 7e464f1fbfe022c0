"""predict.py on real photos (Imagenette), with a network trained here (two steps, in this process).
The command line once as a process; the other cases call predict.py's main() in this process.

The probabilities must be those of the run's own test pipeline (its data module, mean image and
crops) on the same photo; names come from the checkpoint's class_identity (here the data root's
labels.txt, recorded when the run trained)."""

import contextlib
import csv
import io
import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, SHARED_DATA, fixture_dir, script, train_in_process
from hydra.utils import instantiate
from omegaconf import OmegaConf

from alexnet.paths import RunDir
from alexnet.training.module import load_module

PHOTOS = SHARED_DATA / "imagenette-mini"


@pytest.fixture(scope="module")
def run(request):
    if not PHOTOS.is_dir():
        pytest.skip(f"real photos not available: {PHOTOS} is absent (it sits beside the project in CI)")
    tmp = fixture_dir(request, "predict")
    train_in_process(
        tmp / "run",
        "data=imagenette",
        "data.resize=76",
        "data.crop_size=67",
        f"data.cache_dir={tmp}/cache",
        "data.stats_images=200",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "test=false",
        "figures=false",
        "logger=none",
    )
    return tmp / "run"


@pytest.fixture(scope="module")
def cli():
    return script("predict.py")


@pytest.fixture(scope="module")
def labels() -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in (PHOTOS / "labels.txt").read_text().splitlines() if line.strip())


def val_photos(n: int) -> list:
    """n photos from n different classes of the validation split."""
    return [sorted(folder.glob("*.JPEG"))[0] for folder in sorted((PHOTOS / "val").iterdir())[:n]]


def predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_one_photo_prints_its_top5_names_and_probabilities(run, labels):
    photo = val_photos(1)[0]
    proc = predict(run, photo)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{photo}:" and len(lines) == 6
    names = [line.split(". ", 1)[1].rsplit("%", 1)[0].rsplit(None, 1)[0].strip() for line in lines[1:]]
    probs = [float(line.rsplit("%", 1)[0].rsplit(None, 1)[1]) for line in lines[1:]]
    assert set(names) <= set(labels.values()) and len(set(names)) == 5  # "tench", "English_springer", ...: labels.txt's
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 100.05
    assert "1 of 1 images classified (centre crop" in proc.stderr


def test_ten_crop_probabilities_are_the_runs_own_test_pipeline(run, cli, tmp_path):
    photos = val_photos(3)
    out = tmp_path / "p.json"
    assert cli.main([str(run), *map(str, photos), "--crops", "10", "--json", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["image"] for r in rows] == [str(p) for p in photos]
    # By hand: the run's data module as eval.py builds it, its val images, the module's ten-crop average.
    cfg = RunDir(run).read_config()
    data = instantiate({**OmegaConf.to_container(cfg.data, resolve=True), "num_workers": 0})
    data.setup("test")
    module = load_module(run / "checkpoints" / "last.ckpt").eval()
    val = data.datasets["val"]
    for photo, row in zip(photos, rows):
        image, label = val[val.ids.index(f"val/{photo.parent.name}/{photo.name}")]
        with torch.no_grad():
            expected = module.predict_proba(data.augment.eval_batch(image[None], 10), 10)[0]
        top = expected.topk(5)
        assert [t["class"] for t in row["top"]] == [val.classes[i] for i in top.indices.tolist()]
        assert [t["probability"] for t in row["top"]] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_a_folder_gives_a_csv_row_per_readable_image_and_names_the_unreadable(run, cli, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    photos = val_photos(2)
    for p in photos:
        (folder / p.name).symlink_to(p)
    (folder / "sub" / "truncated.JPEG").write_bytes(photos[0].read_bytes()[:2000])
    (folder / "notes.jpg").write_text("not an image")
    (folder / "readme.txt").write_text("not an image, and not named like one: not read")
    assert cli.main([str(run), str(folder)]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == ["image", "class_1", "name_1", "probability_1"] and len(rows[0]) == 1 + 3 * 5
    assert sorted(r[0] for r in rows[1:]) == sorted(str(folder / p.name) for p in photos)
    assert f"skipped {folder / 'sub' / 'truncated.JPEG'}" in err and f"skipped {folder / 'notes.jpg'}" in err
    assert "2 of 4 images classified" in err and "2 unreadable, skipped" in err


def test_all_unreadable_fails_and_bad_arguments_name_the_problem(run, cli, tmp_path):
    bad = tmp_path / "bad.JPEG"
    bad.write_bytes(b"\xff\xd8 truncated")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main([str(run), str(bad)]) == 1
        assert cli.main([str(run), str(tmp_path / "missing.JPEG")]) == 2
        assert cli.main([str(tmp_path / "no-run"), str(bad)]) == 2
        with pytest.raises(SystemExit):  # argparse's own message for a bad choice
            cli.main([str(run), str(bad), "--crops", "5"])
    assert out.getvalue() == ""
    err = err.getvalue()
    assert f"skipped {bad}: " in err and "0 of 1 images classified" in err
    assert f"predict error: {tmp_path / 'missing.JPEG'}: no such image or folder" in err
    assert f"predict error: {tmp_path / 'no-run'}: no such checkpoint or folder" in err
    assert "argument --crops: invalid choice: 5" in err


def test_class_names_are_the_checkpoints_when_the_data_root_holds_others(run, labels, tmp_path):
    """A data root re-used for other classes (three here, named in its own labels.txt): one warning
    line, and every name printed is one the network was trained on, in the checkpoint's order."""
    other = tmp_path / "other"
    photos = val_photos(3)
    for i, photo in enumerate(photos):
        for split in ("train", "val"):
            (other / split / f"n0000000{i}").mkdir(parents=True)
            (other / split / f"n0000000{i}" / photo.name).symlink_to(photo)
    (other / "labels.txt").write_text("".join(f"n0000000{i} chain_saw_{i}\n" for i in range(3)))
    cli = script("predict.py")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main([str(run), str(photos[0]), "--data-root", str(other), "--json", "--top-k", "10"]) == 0
    warnings = [line for line in err.getvalue().splitlines() if line.startswith("predict warning: ")]
    assert len(warnings) == 1, err.getvalue()
    assert f"was trained on other classes than {other} holds (10 classes in the checkpoint, 3 in {other}" in warnings[0]
    top = json.loads(out.getvalue())[0]["top"]
    identity = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["class_identity"]
    assert sorted(t["class"] for t in top) == sorted(labels) == sorted(identity["classes"])
    assert all(labels[t["class"]] == t["name"] for t in top)  # the checkpoint's names, not chain_saw_*
