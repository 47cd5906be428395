"""Generated CUB-200-2011 and Cars-196 samples in the real on-disk layouts: the smoke profiles' image datasets."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from harness.data import Dataset
from harness.data.folders import CUB_FOLDER, load_cars196, load_cub200


def write_sample(root: Path, per_class: int = 6, size: int = 48) -> list[Path]:
    """Tiny CUB-200-2011 and Cars-196 datasets in the real on-disk layouts, for smoke runs without the downloads.

    Four classes each, straddling the standard class-disjoint boundary (CUB 99-102: two train, two test;
    Cars 97-100), `per_class` JPEGs per class whose colour depends on the class plus noise, so that a few steps
    of training can separate them. Nothing here is a real bird or car: numbers from it test code paths only.
    """
    import scipy.io
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(0)

    def picture(path: Path, class_id: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        hue = np.array([(class_id * 67) % 256, (class_id * 131) % 256, (class_id * 29) % 256], dtype=np.float64)
        pixels = np.clip(hue + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="RGB").save(path, format="JPEG", quality=90)

    cub = root / CUB_FOLDER
    image_lines, label_lines, class_lines = [], [], []
    for class_id in (99, 100, 101, 102):
        class_dir = f"{class_id:03d}.Sample_{class_id}"
        class_lines.append(f"{class_id} {class_dir}")
        for k in range(per_class):
            image_id = len(image_lines) + 1
            relative = f"{class_dir}/Sample_{class_id}_{k}.jpg"
            picture(cub / "images" / relative, class_id)
            image_lines.append(f"{image_id} {relative}")
            label_lines.append(f"{image_id} {class_id}")
    (cub / "images.txt").write_text("\n".join(image_lines) + "\n")
    (cub / "image_class_labels.txt").write_text("\n".join(label_lines) + "\n")
    (cub / "classes.txt").write_text("\n".join(class_lines) + "\n")

    cars = root / "cars196"
    records = []
    for i, class_id in enumerate(c for c in (97, 98, 99, 100) for _ in range(per_class)):
        relative = f"car_ims/{i + 1:06d}.jpg"
        picture(cars / relative, class_id)
        records.append((relative, class_id, i % 2))
    annotations = np.empty((1, len(records)), dtype=[("relative_im_path", object), ("class", object),
                                                     ("test", object)])
    for i, (relative, class_id, test) in enumerate(records):
        annotations[0, i] = (relative, np.array([[class_id]], dtype=np.uint8), np.array([[test]], dtype=np.uint8))
    scipy.io.savemat(cars / "cars_annos.mat", {"annotations": annotations})
    return [cub, cars]


def _sample_root(root: Path) -> Path:
    """<data root>/harness-sample, written once (atomically: a half-written sample is never loaded)."""
    target = Path(root) / "harness-sample"
    if not (target / "cars196" / "cars_annos.mat").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".harness-sample-", dir=target.parent))
        write_sample(scratch)
        try:
            scratch.rename(target)
        except OSError:  # another process wrote it first
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def load_cub200_sample(root: Path) -> Dataset:
    """The real CUB-200-2011 loader reading the generated sample (smoke profiles)."""
    return load_cub200(_sample_root(root))


def load_cars196_sample(root: Path) -> Dataset:
    """The real Cars-196 loader reading the generated sample (smoke profiles)."""
    return load_cars196(_sample_root(root))
