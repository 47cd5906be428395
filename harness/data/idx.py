"""IDX datasets (MNIST, Fashion-MNIST): found on disk (or downloaded by torchvision), checksum-verified, in memory."""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.data import Dataset, TensorSplit, torchvision_fetch
from harness.errors import DataError
from harness.files import bytes_hash

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class IdxSource:
    """An MNIST-format dataset: where to look, what torchvision calls it, and the checksums that identify it."""

    name: str
    torchvision_class: str  # torchvision.datasets class that can download it
    folders: tuple[str, ...]  # sub-folders of the data root to search, in order
    extra_dirs: tuple[Path, ...] = ()
    # sha256 of the decompressed IDX files, for copies whose .gz was recompressed (Debian's); the .gz files
    # torchvision downloads are checked against torchvision's own md5 list instead.
    idx_sha256: dict[str, str] = field(default_factory=dict)
    how_to_get: str = ""


def _torchvision_md5(class_name: str) -> dict[str, str]:
    import torchvision.datasets

    return dict(getattr(torchvision.datasets, class_name).resources)


def _find(source: IdxSource, root: Path) -> Path | None:
    """The first candidate directory holding all four files (as .gz or decompressed)."""
    for directory in [root / f for f in source.folders] + list(source.extra_dirs):
        if all((directory / f).exists() or (directory / f"{f}.gz").exists() for f in IDX_FILES):
            return directory
    return None


def _download(source: IdxSource, root: Path) -> Path | None:
    """Let torchvision fetch and md5-check the archives; None when the network does not allow it."""
    torchvision_fetch(source.torchvision_class, root)
    return _find(source, root)


def _read_verified(source: IdxSource, directory: Path, name: str) -> tuple[bytes, str]:
    """Decompressed bytes of one IDX file and their sha256, after checking the file is the known one."""
    gz_path, raw_path = directory / f"{name}.gz", directory / name
    md5_known = _torchvision_md5(source.torchvision_class).get(f"{name}.gz")
    if gz_path.exists():
        packed = gz_path.read_bytes()
        try:
            content = gzip.decompress(packed)
        except (OSError, EOFError) as exc:
            raise DataError(f"{gz_path} is truncated or not gzip ({exc}); delete it and fetch it again") from None
        gz_ok = bytes_hash(packed, "md5") == md5_known
    else:
        content, gz_ok = raw_path.read_bytes(), False
    digest = bytes_hash(content)
    if not gz_ok and source.idx_sha256.get(name) != digest:
        shown = gz_path if gz_path.exists() else raw_path
        raise DataError(f"{shown} fails its checksum (sha256 of content {digest[:12]}..., not the known "
                        f"{source.name} file); delete it and fetch it again: {source.how_to_get}")
    return content, digest


def _parse_idx(content: bytes, where: Path) -> np.ndarray:
    """IDX (the MNIST file format): zero, zero, type 0x08 (uint8), rank, big-endian dims, then the data."""
    if len(content) < 4 or content[:3] != b"\x00\x00\x08":
        raise DataError(f"{where} is not an uint8 IDX file; delete it and fetch it again")
    rank = content[3]
    dims = np.frombuffer(content, dtype=">i4", count=rank, offset=4)
    offset = 4 + 4 * rank
    expected = int(np.prod(dims))
    if len(content) - offset != expected:
        raise DataError(f"{where} is truncated ({len(content) - offset} of {expected} values); "
                        "delete it and fetch it again")
    return np.frombuffer(content, dtype=np.uint8, offset=offset).reshape(tuple(int(d) for d in dims))


def _normalised(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    pixels = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((pixels - mean) / std).unsqueeze(1).contiguous()


def load_idx(source: IdxSource, root: Path) -> Dataset:
    directory = _find(source, root) or _download(source, root)
    if directory is None:
        places = ", ".join(str(p) for p in [root / f for f in source.folders] + list(source.extra_dirs))
        raise DataError(f"{source.name} not found: need {', '.join(f + '.gz' for f in IDX_FILES)} in one of "
                        f"{places} (download failed or offline); {source.how_to_get}")
    arrays, checksums = {}, {}
    for name in IDX_FILES:
        content, checksums[name] = _read_verified(source, directory, name)
        arrays[name] = _parse_idx(content, directory / name)
    train_x, train_y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    test_x, test_y = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"{directory}: image and label files disagree in length; fetch them again")
    scaled = train_x.astype(np.float64) / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())
    return Dataset(
        name=source.name,
        train=TensorSplit(_normalised(train_x, mean, std), torch.from_numpy(train_y.astype(np.int64))),
        test=TensorSplit(_normalised(test_x, mean, std), torch.from_numpy(test_y.astype(np.int64))),
        num_classes=int(max(train_y.max(), test_y.max())) + 1,
        source=str(directory),
        checksums=checksums,
        mean=mean,
        std=std,
    )


MNIST = IdxSource(
    name="mnist",
    torchvision_class="MNIST",
    folders=("MNIST/raw", "mnist"),
    how_to_get="run once with network access (torchvision downloads it into the data root), "
               "or copy the four .gz files from the MNIST site into <data root>/MNIST/raw",
)
FASHION_MNIST = IdxSource(
    name="fashion_mnist",
    torchvision_class="FashionMNIST",
    folders=("FashionMNIST/raw", "fashion-mnist"),
    extra_dirs=(DEBIAN_FASHION_MNIST,),
    idx_sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    how_to_get="on Debian/Ubuntu `apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist), "
               "or run once with network access (torchvision downloads it into the data root)",
)
load_mnist = functools.partial(load_idx, MNIST)
load_fashion_mnist = functools.partial(load_idx, FASHION_MNIST)
