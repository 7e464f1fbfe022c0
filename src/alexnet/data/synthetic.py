"""The built-in offline dataset: small photos-like JPEGs in the ILSVRC folder layout.

It exists so that ``python train.py`` runs anywhere, with no download, through the very
same loading code as ImageNet (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``).

A class is a (shape, texture) pair, five shapes times two textures, and leans towards a hue
of its own that overlaps its neighbours', so no single cue separates the classes. Everything
else is nuisance drawn per image: the position, size and rotation of the object, the
background gradient and noise, and clutter (smaller shapes of every kind, any colour).
Generation is deterministic from ``seed``.
"""

import colorsys
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("disc", "square", "triangle", "cross", "ring")
TEXTURES = ("stripes", "checks")
# Made-up wnids in the ILSVRC format (real wnids start with n0/n1; these start with s9).
CLASSES = [(f"s9{i:07d}", f"{texture} {shape}") for i, (texture, shape) in enumerate((t, s) for t in TEXTURES for s in SHAPES)]
MARKER = "synthetic.json"


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        corners = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        pts = [(x * r * 0.8, y * r * 0.8) for x, y in corners]
    elif shape == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
    elif shape == "cross":
        w = r * 0.35
        pts = [(w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w), (-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w)]
    else:
        raise ValueError(shape)
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    if shape == "disc":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r * 0.4)))
    else:
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=fill)


def _texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean pattern: stripes at any angle, or a checkerboard at any angle."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(4.0, 8.0)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    if kind == "stripes":
        return (np.floor(u / (period / 2)) % 2).astype(bool)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    return ((np.floor(u / (period / 2)) + np.floor(v / (period / 2))) % 2).astype(bool)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _class_colour(label: int, rng: np.random.Generator) -> np.ndarray:
    """A saturated colour whose hue leans towards the class's own (neighbouring classes overlap)."""
    hue = (label / len(CLASSES) + rng.normal(0, 0.05)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))
    return np.array(rgb, dtype=np.float32) * 255


def render(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    texture, shape = CLASSES[label][1].split()
    # Background: a dull colour gradient plus pixel noise.
    c0, c1 = (_random_colour(rng) * 0.5 + 64 for _ in range(2))
    t = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    bg = c0 * (1 - t) + c1 * t
    bg = np.broadcast_to(bg, (size, size, 3)).copy()
    img = Image.fromarray(np.clip(bg + rng.normal(0, 12, bg.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    # Clutter: small solid shapes of every kind, some partly hidden by the object.
    for _ in range(rng.integers(1, 5)):
        r = rng.uniform(0.05, 0.12) * size
        cx, cy = rng.uniform(0, size, 2)
        fill = tuple(int(v) for v in _random_colour(rng))
        _draw_shape(draw, SHAPES[rng.integers(len(SHAPES))], cx, cy, r, rng.uniform(0, 2 * math.pi), fill)
    # The object: its shape as a mask, filled with the class texture in two random colours.
    r = rng.uniform(0.22, 0.38) * size
    cx, cy = rng.uniform(r * 0.8, size - r * 0.8, 2)
    mask = Image.new("L", (size, size), 0)
    _draw_shape(ImageDraw.Draw(mask), shape, cx, cy, r, rng.uniform(0, 2 * math.pi), 255)
    pattern = _texture(texture, size, rng)[..., None]
    colour = _class_colour(label, rng)
    fg = np.where(pattern, colour, colour * rng.uniform(0.2, 0.5)).astype(np.uint8)
    img.paste(Image.fromarray(fg), (0, 0), mask)
    return img


def generate(root: Path, train_per_class: int, val_per_class: int, image_size: int, seed: int) -> None:
    """Write the dataset under ``root`` unless the same one is already there."""
    root = Path(root)
    spec = {
        "classes": CLASSES,
        "train_per_class": train_per_class,
        "val_per_class": val_per_class,
        "image_size": image_size,
        "seed": seed,
    }
    marker = root / MARKER
    if marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(spec)):
        return
    if marker.exists():
        marker.unlink()  # a different spec: rewrite every file below
    for split_idx, (split, per_class) in enumerate((("train", train_per_class), ("val", val_per_class))):
        for label, (wnid, _) in enumerate(CLASSES):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("*.JPEG"):
                stale.unlink()
            # One stream per (split, class): reproducible whatever the counts of the others.
            rng = np.random.default_rng([seed, split_idx, label])
            for i in range(per_class):
                render(label, image_size, rng).save(folder / f"{wnid}_{i:05d}.JPEG", quality=90)
    (root / "labels.txt").write_text("".join(f"{wnid} {name}\n" for wnid, name in CLASSES))
    marker.write_text(json.dumps(spec, indent=1))  # written last: its presence means complete
