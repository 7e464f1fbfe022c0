"""The top-k classes of image files, seen as the run's own test images are seen.

Like Caffe's classify.py and timm's inference.py, with this project's preprocessing taken from
the run itself: its DataModule is rebuilt from ``<run>/.hydra/config.yaml`` (``evaluate`` does the
same for eval.py), so resize, crop size and the training set's mean image are the run's. The
class names and their order are the checkpoint's own (``class_identity``: what each output of fc8
means); a data root that now holds other classes is reported in one line and its names are not
used. A checkpoint saved before it recorded its classes takes the data root's names.

Each file is read by the project's one decoding rule (``alexnet.data.decode``) with its EXIF
orientation applied: a phone photo is classified upright, as a viewer shows it (the training
images were read without it, as the paper's ImageNet pipeline did).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from alexnet.checkpointing.checks import IDENTITY, class_differences
from alexnet.checkpointing.io import load
from alexnet.data.augment import CROP_COUNTS
from alexnet.data.decode import decode
from alexnet.data.listing import IMAGE_EXTENSIONS, is_image
from alexnet.errors import ConfigError
from alexnet.evaluation.evaluate import build_datamodule, data_config, find_members
from alexnet.training.module import load_module


@dataclass
class Prediction:
    image: str
    classes: list[str]  # class folder names (wnids), most probable first
    names: list[str]  # their human-readable names
    probabilities: list[float]

    def as_dict(self) -> dict:
        top = [
            {"class": c, "name": n, "probability": round(p, 6)} for c, n, p in zip(self.classes, self.names, self.probabilities)
        ]
        return {"image": self.image, "top": top}


def image_files(paths: Iterable[str]) -> list[Path]:
    """Files as given (whatever their extension: an unreadable one is reported later), folders
    searched recursively for image files (``listing.IMAGE_EXTENSIONS``), in sorted order."""
    files = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image(p.name))
            if not found:
                raise FileNotFoundError(f"{path}: no image file ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such image or folder")
    return files


def load_image(path: Path, resize: int) -> torch.Tensor:
    """predict's reading of an image file: uint8 (3, resize, resize), EXIF orientation applied."""
    return decode(path.read_bytes(), resize, exif_orientation=True)


class Predictor:
    """One trained network and its run's test-time preprocessing."""

    def __init__(self, run_or_checkpoint: str, crops: int = 1, data_root: str | None = None, device: str | None = None):
        if crops not in CROP_COUNTS:
            raise ConfigError(f"--crops must be one of {CROP_COUNTS} (centre; corners, centre, reflections), got {crops}")
        members, _ = find_members([run_or_checkpoint])
        if len(members) > 1:
            raise ConfigError(
                f"{run_or_checkpoint} holds {len(members)} runs (a multirun folder): pass one run folder or checkpoint"
            )
        member = members[0]
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.module = load_module(member.checkpoint, map_location=self.device).eval()
        self.checkpoint, self.crops = member.checkpoint, crops
        data = data_config(member, self.module, data_root)
        saved = load(str(member.checkpoint)).get(IDENTITY)
        if saved:  # the checkpoint names its classes: the root may hold others (said below)
            data["num_classes"] = None
        # The test split is only listed (never read): the mean image comes from the training run's cache.
        self.datamodule = build_datamodule(data, data.get("test_split") or "val", crops, batch_size=1, num_workers=0)
        self.warnings: list[str] = [member.warning] if member.warning else []
        if saved:
            self.classes = list(saved["classes"])
            self.names = list(saved.get("class_names") or saved["classes"])
            differences = class_differences(
                self.classes, self.datamodule.classes, "in the checkpoint", f"in {self.datamodule.root}"
            )
            if differences:
                self.warnings.append(
                    f"{member.checkpoint} was trained on other classes than {self.datamodule.root} holds ({differences}): "
                    "the class names are the checkpoint's, the mean image is that folder's"
                )
        else:
            self.classes, self.names = self.datamodule.classes, self.datamodule.class_names()
        if self.module.net.num_classes != len(self.classes):
            where = "its class_identity names" if saved else f"{self.datamodule.root} has"
            raise ConfigError(f"{member.checkpoint} has {self.module.net.num_classes} classes; {where} {len(self.classes)}")

    def predict(self, files: list[Path], top_k: int = 5, batch_size: int = 32) -> Iterator[Prediction | tuple[Path, str]]:
        """A Prediction per readable file, (file, reason) per unreadable one, in the order given."""
        k = min(top_k, len(self.classes))
        for start in range(0, len(files), batch_size):
            inputs, readable = [], []
            for path in files[start : start + batch_size]:
                try:
                    image = load_image(path, self.datamodule.resize)[None]
                    inputs.append(self.datamodule.augment.eval_batch(image, self.crops)[0])
                    readable.append(path)
                except (OSError, ValueError) as err:  # unreadable, truncated, not an image
                    yield path, str(err).splitlines()[0]
            if not inputs:
                continue
            with torch.inference_mode():
                probs = self.module.predict_proba(torch.stack(inputs).to(self.device), self.crops).cpu()
            top = probs.topk(k, dim=1)
            for path, values, indices in zip(readable, top.values.tolist(), top.indices.tolist()):
                yield Prediction(str(path), [self.classes[i] for i in indices], [self.names[i] for i in indices], values)
