"""Generated glyphs: a seeded many-class dataset for class-disjoint metric learning without a download.

Why it exists: on Fashion-MNIST, with its ten classes, raw pixels retrieve the five classes a network never saw
better than any network trained on the other five (measured: see the cub_cars, nk_sampling and one_shot study
headers), so a stand-in on it cannot show what the class-disjoint studies are about. Here, as in Omniglot,
there are many classes that share how they are drawn but not what is drawn: what a network learns on some
classes (strokes, their shapes, invariance to where and how large they are) carries over to the others, while raw
pixels are weak because a shift of two pixels moves every stroke off itself.

A class is a figure of 2 to 4 strokes; a stroke is a quadratic Bezier curve whose three control points are drawn
uniformly in the unit square (a stroke starts at the end of the previous one with probability 1/2, so figures are
often connected). An image of a class redraws its figure with every control point moved by up to `JITTER`, a
stroke half-width of 0.7-1.3 px, a rotation of up to about 17 degrees, a scale of 0.8-1.1 and a shift of up to 3 px,
rasterised at 28 x 28 with a one-pixel linear edge and stored as uint8 like a scanned image.

Bit-identical on every machine: draws are uniform doubles from numpy's PCG64 (integer arithmetic), rotations are
parametrised rationally (no sin or cos) and the rasteriser uses only +, -, *, /, sqrt and min, which IEEE 754
rounds exactly; the checksum of the pixels is recorded like a download's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.data import Dataset, TensorSplit
from harness.files import bytes_hash

SIZE = 28
JITTER = 0.08  # how far (in figure widths) each control point of a stroke moves between images of one class
POINTS_PER_STROKE = 7  # points on each Bezier curve; 6 segments are rasterised


@dataclass(frozen=True)
class GlyphSource:
    name: str
    seed: int  # draws the figures (the classes) and every image of them
    classes: int
    train_per_class: int
    test_per_class: int


GLYPHS = GlyphSource("glyphs", seed=0, classes=200, train_per_class=60, test_per_class=20)
GLYPHS_DESIGN = GlyphSource("glyphs_design", seed=1, classes=200, train_per_class=60, test_per_class=20)


def figures(rng: np.random.Generator, classes: int) -> list[np.ndarray]:
    """One figure per class: an array (strokes, 3 control points, xy) in the unit square."""
    out = []
    for _ in range(classes):
        strokes = int(rng.integers(2, 5))
        points = rng.random((strokes, 3, 2)) * 0.8 + 0.1
        for s in range(1, strokes):
            if rng.random() < 0.5:
                points[s, 0] = points[s - 1, 2]
        out.append(points)
    return out


def _segments(control: np.ndarray) -> np.ndarray:
    """(..., strokes * 6, 2, 2) line segments along quadratic Bezier strokes of (..., strokes, 3, 2) control points."""
    t = np.linspace(0.0, 1.0, POINTS_PER_STROKE, dtype=control.dtype)[:, None]
    p0, p1, p2 = control[..., 0:1, :], control[..., 1:2, :], control[..., 2:3, :]
    curve = (1 - t) * (1 - t) * p0 + 2 * (1 - t) * t * p1 + t * t * p2  # (..., strokes, points, 2)
    segments = np.stack([curve[..., :-1, :], curve[..., 1:, :]], axis=-2)  # (..., strokes, 8, 2, 2)
    return segments.reshape(*control.shape[:-3], -1, 2, 2)


def render(control: np.ndarray, half_width: np.ndarray, size: int = SIZE) -> np.ndarray:
    """uint8 (n, size, size) images of (n, strokes, 3, 2) strokes in pixel coordinates: 255 on a stroke, then a
    linear one-pixel edge; `half_width` is (n,) in pixels."""
    seg = _segments(control)[:, None]  # (n, 1, segments, 2, 2)
    ax, ay, bx, by = seg[..., 0, 0], seg[..., 0, 1], seg[..., 1, 0], seg[..., 1, 1]
    centres = np.arange(size, dtype=np.float32) + np.float32(0.5)
    px = np.tile(centres, size).reshape(1, -1, 1)  # pixel centres, row-major: x varies fastest
    py = np.repeat(centres, size).reshape(1, -1, 1)
    abx, aby = bx - ax, by - ay
    length2 = abx * abx + aby * aby
    along = np.clip(((px - ax) * abx + (py - ay) * aby) / np.where(length2 > 0, length2, 1), 0, 1)
    dx, dy = px - (ax + along * abx), py - (ay + along * aby)
    distance = np.sqrt((dx * dx + dy * dy).min(axis=-1))  # (n, pixels); sqrt after min: one per pixel
    ink = np.clip(half_width[:, None] + np.float32(0.5) - distance, 0, 1)
    return np.floor(ink * np.float32(255) + np.float32(0.5)).astype(np.uint8).reshape(-1, size, size)


def instances(rng: np.random.Generator, figure: np.ndarray, n: int, size: int = SIZE) -> np.ndarray:
    """`n` images of one class: its figure jittered, rotated, scaled and shifted, then rendered."""
    control = figure[None] + (rng.random((n, *figure.shape)) * 2 - 1) * JITTER
    t = ((rng.random(n) * 2 - 1) * 0.2)[:, None, None]  # tan(angle / 2): |angle| < ~23 degrees, no sin or cos
    cos, sin = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)
    scale = (0.75 + rng.random(n) * 0.35)[:, None, None, None]
    shift = ((rng.random((n, 2)) * 2 - 1) * 0.12)[:, None, None, :]
    half_width = 0.7 + rng.random(n) * 0.6
    centred = control - 0.5
    rotated = np.stack([cos * centred[..., 0] - sin * centred[..., 1],
                        sin * centred[..., 0] + cos * centred[..., 1]], axis=-1)
    unit = rotated * scale + 0.5 + shift
    margin = 2.0
    # float32 from here: the rasteriser is memory-bound and a pixel needs no more precision
    return render((unit * (size - 2 * margin) + margin).astype(np.float32), half_width.astype(np.float32), size)


def generate(source: GlyphSource) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels): uint8 (N, 28, 28) and int64, class-major order."""
    rng = np.random.default_rng(source.seed)
    shapes = figures(rng, source.classes)
    per_class = source.train_per_class + source.test_per_class
    images = np.stack([instances(rng, figure, per_class) for figure in shapes])
    train = images[:, :source.train_per_class].reshape(-1, SIZE, SIZE)
    test = images[:, source.train_per_class:].reshape(-1, SIZE, SIZE)
    labels = np.arange(source.classes, dtype=np.int64)
    return train, np.repeat(labels, source.train_per_class), test, np.repeat(labels, source.test_per_class)


def load_glyphs(root: Path, source: GlyphSource = GLYPHS) -> Dataset:
    """The generated glyph dataset (nothing is read from `root`): 200 classes, 60 training and 20 test images each."""
    train_x, train_y, test_x, test_y = generate(source)
    scaled = train_x.astype(np.float64) / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())

    def split(x: np.ndarray, y: np.ndarray) -> TensorSplit:
        pixels = torch.from_numpy(x.astype(np.float32) / 255.0)
        return TensorSplit(((pixels - mean) / std).unsqueeze(1).contiguous(), torch.from_numpy(y))

    checksum = bytes_hash(train_x.tobytes() + train_y.tobytes() + test_x.tobytes() + test_y.tobytes())
    return Dataset(source.name, split(train_x, train_y), split(test_x, test_y), source.classes,
                   f"generated by harness.data.glyphs (seed {source.seed})", {source.name: checksum}, mean, std)


def load_glyphs_design(root: Path) -> Dataset:
    """The same generator with another seed: other figures, for choosing settings without the test classes."""
    return load_glyphs(root, GLYPHS_DESIGN)
