"""Checkpoints: one that cannot be used is refused naming the file; every one says which class each
output is, checked on resume, evaluation and fine-tuning; a full disk keeps the last whole one."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import OPTIM, compose_train, fixture_dir, train_in_process, with_eager_lrn
from longrun import TINY, prepare, toy, train_here
from PIL import Image

from alexnet.checkpointing.checks import IDENTITY, class_differences
from alexnet.checkpointing.io import AtomicCheckpointIO
from alexnet.errors import ConfigError, RunStopped
from alexnet.evaluation.evaluate import evaluate
from alexnet.exit_codes import ExitCode
from alexnet.training.module import LitAlexNet

STEPS = ["+trainer.limit_train_batches=2", "++callbacks.model_checkpoint.save_top_k=-1"]  # epoch000.ckpt, then last.ckpt
# Image folders shaped as TINY's synthetic run was trained on.
FOLDER = ["data=imagefolder", "data.num_classes=10", "data.resize=76", "data.crop_size=67", *TINY[2:]]


def lightning_checkpoint(path, **model) -> str:
    """A checkpoint laid out as Lightning writes one (weights and hyper-parameters) for a given net."""
    module = LitAlexNet(model={**compose_train().model, "crop_size": 67, "num_classes": 10, **model}, optim=OPTIM)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0, "global_step": 1}, path)
    return str(path)


def image_folder(root: Path, classes: list[str], per_class: int = 1) -> Path:
    for split in ("train", "val"):
        for k, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (80, 80), (20 * k, 90, 10 * i)).save(root / split / name / f"{i}.JPEG")
    return root


def test_truncated_checkpoint_is_named_with_the_others_beside_it(tmp_path):
    good = lightning_checkpoint(tmp_path / "good.ckpt")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(Path(good).read_bytes()[:1_000_000])  # what a crash mid-copy leaves
    with pytest.raises(ConfigError) as error:  # train.py: `config error: ...`, exit 2 (bad_input/test_config_values)
        train_here(tmp_path / "run", f"data.root={tmp_path}/synthetic", *TINY, f"ckpt_path={cut}")
    assert str(error.value).startswith(f"ckpt_path: {cut} is not a readable checkpoint (truncated or corrupt?")
    assert "other checkpoints beside it: good.ckpt" in str(error.value)


@pytest.mark.parametrize(
    "model, override, message",
    [
        (
            {"columns": 1},
            "model.columns=2",
            (
                r"is from another architecture .*model.columns=1 there, 2 here; "
                r"net.features.conv1.weight: \(48, 3, 11, 11\) there, \(96, 3, 11, 11\) here"
            ),
        ),
        ({"extra_conv": True}, "model.extra_conv=false", "is from another architecture .*unexpected net.features.conv6.weight"),
        ({"num_classes": 1000}, "data.num_classes=10", "has 1000 classes \\(fc8\\), this run has data.num_classes=10"),
    ],
)
def test_checkpoint_of_another_network_is_refused_before_training(tmp_path, model, override, message):
    ckpt = lightning_checkpoint(tmp_path / "other.ckpt", **model)
    with pytest.raises(ConfigError, match=f"ckpt_path: {ckpt} " + message):
        train_here(tmp_path / "run", f"data.root={tmp_path}/synthetic", *TINY, override, f"ckpt_path={ckpt}")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no checkpoint file"),
        (b"not a checkpoint", "is not a readable checkpoint"),
        ({"weights": torch.zeros(3)}, "is not a Lightning checkpoint of this project"),
    ],
)
def test_missing_or_foreign_checkpoint_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=f"ckpt_path: .*x.ckpt.*{message}|ckpt_path: {message}"):
        train_here(tmp_path / "run", f"data.root={tmp_path}/synthetic", *TINY, f"ckpt_path={path}")


@pytest.fixture(scope="module")
def full_disk_run(request):
    """A real 2-step run whose run folder is on a 250 MiB filesystem of its own (tmpfs): room for its
    first checkpoint (154 MiB: weights and momentum), not for the second. Where mounting is not
    permitted, the same run on the ordinary disk (it then finishes; the full-disk test skips)."""
    root = fixture_dir(request, "full_disk")
    data, disk = root / "data", root / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=250m", "tmpfs", str(disk)], capture_output=True, text=True)
    try:  # unmounted whatever happens, a failed preparation included
        prepare(data)
        try:
            stop = None
            train_in_process(disk / "run", *toy(data, 1, *STEPS))
        except RunStopped as err:
            stop = err
        yield data, disk / "run", stop, mount
    finally:
        if mount.returncode == 0:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_keeps_the_whole_checkpoint_and_the_rerun_resumes_from_it(full_disk_run):
    data, run, stop, mount = full_disk_run
    if mount.returncode != 0:
        pytest.skip(f"no real full disk: mount -t tmpfs is not permitted here ({mount.stderr.strip() or mount.returncode})")
    ckpts = run / "checkpoints"
    assert stop is not None and stop.exit_code == ExitCode.FAILED  # train.py prints the message and exits 1
    message = str(stop)
    assert f"could not write checkpoint {ckpts}/last.ckpt (not enough free space: not started): {ckpts} has " in message
    assert "a checkpoint needs about 154 MiB; the previous checkpoints are intact (epoch000.ckpt). Free at least" in message
    resume = f"resume with: python train.py {' '.join(with_eager_lrn(toy(data, 1, *STEPS)))} hydra.run.dir={run} ckpt_path=last"
    assert resume in message
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch000.ckpt"]  # whole, and no temporary file left
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    # The rerun: last.ckpt was never written; the whole epoch000.ckpt is where the run goes on from.
    again = train_in_process(run, *toy(data, 1, *STEPS), "ckpt_path=last")
    assert (
        f"ckpt_path=last: {ckpts}/last.ckpt is missing; resuming from the newest complete checkpoint {ckpts}/epoch000.ckpt"
    ) in again.log
    assert "Restored all states" in again.log
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 1


# In a process of its own: the kernel refuses any write past 8 MiB (RLIMIT_FSIZE) while the disk has
# room, so the write starts and fails inside torch.save, which says only "unexpected pos ... vs ...".
# SIGXFSZ is ignored so that write() returns EFBIG instead of the signal killing the process.
FILE_SIZE_LIMIT = """
import resource, signal, sys, torch
from alexnet.checkpointing.io import AtomicCheckpointIO
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 2**20, resource.RLIM_INFINITY))
try:
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(4 * 2**20)}, "global_step": 2}, sys.argv[1])
except Exception as err:
    print(f"{type(err).__name__}: {err}")
"""


def test_a_write_that_fails_midway_is_named_and_the_previous_checkpoint_stays(tmp_path):
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2**20)}, "global_step": 1}, ckpt)  # 4 MiB
    proc = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(ckpt)], capture_output=True, text=True, timeout=300)
    message = proc.stdout.strip()  # of the 16 MiB write, refused at 8
    assert message.startswith(
        f"CheckpointWriteError: [Errno 27] could not write checkpoint {ckpt} (File too large): {ckpt.parent} has "
    ), proc.stdout + proc.stderr
    assert "a checkpoint needs about 16 MiB; the previous checkpoints are intact (last.ckpt)" in message
    assert "unexpected pos" not in message
    assert torch.load(ckpt, weights_only=True)["global_step"] == 1
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]  # the temporary file is gone


def test_every_checkpoint_carries_its_classes_and_they_are_checked(full_disk_run, tmp_path, caplog):
    data, run, _, _ = full_disk_run
    ckpt = run / "checkpoints" / "epoch000.ckpt"
    saved = torch.load(ckpt, map_location="cpu", mmap=True, weights_only=True)[IDENTITY]
    classes = [p.name for p in sorted((data / "train").iterdir())]
    assert saved["classes"] == classes and saved["train_images"] == 80
    assert saved["class_names"][:2] == ["stripes disc", "stripes square"] and len(saved["train_fingerprint"]) == 40
    # The same number of classes, but not the same classes: the labels would mean other things.
    other = image_folder(tmp_path / "other", [*classes[:8], "n0000001", "n0000002"])
    differ = rf"only in the checkpoint: {classes[8]}, {classes[9]}; only in {other}: n0000001, n0000002"
    with pytest.raises(ConfigError, match=rf"^ckpt_path: {ckpt} was trained on other classes than this data: .*{differ}$"):
        train_here(tmp_path / "resume", *FOLDER, f"data.root={other}", f"ckpt_path={ckpt}")
    # eval.py on the bare file (no run folder beside it: the data is --data-root, read as image folders).
    bare = tmp_path / "bare.ckpt"
    bare.symlink_to(ckpt)
    with pytest.raises(ConfigError, match=rf"^checkpoint: {bare} was trained on other classes than this data: .*{differ}$"):
        evaluate([str(bare)], crops=1, batch_size=8, data_root=str(other))
    # Folders are read in name order; a store or a devkit can number the same classes otherwise.
    assert (
        class_differences(["a", "b", "c"], ["b", "a", "c"], "there", "here")
        == "3 classes there, 3 here; the same classes in another order (label 0 is 'a' there, 'b' here)"
    )
    # A checkpoint from before class names were kept: evaluated, with a warning.
    old = lightning_checkpoint(tmp_path / "old.ckpt")
    with caplog.at_level(logging.WARNING):
        evaluate([old], crops=1, batch_size=8, data_root=str(other))
    assert f"checkpoint: {old} records no class names" in caplog.text
    # Fine-tuning onto new classes is the design (fc8 is new): recorded, not refused.
    summary = train_here(
        tmp_path / "finetune",
        *FOLDER,
        f"data.root={other}",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        f"+init_from={ckpt}",
    )
    assert summary["status"] == "finished"
    assert summary["init_from"]["classes"] == "differ" and differ in summary["init_from"]["differences"]
