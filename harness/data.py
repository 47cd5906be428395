"""Datasets by name: found on disk (or downloaded by torchvision), checksum-verified, held in memory as tensors."""

from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import http.client
import io
import os
import pickle
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.errors import ConfigError, DataError
from harness.registry import Registry

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32, (N, C, H, W), normalised with the training split's mean and std
    labels: torch.Tensor  # int64, (N,)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    source: str  # the directory (or package) the files came from
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of its decompressed content
    mean: float | tuple[float, ...] = 0.0  # one value for greyscale, one per channel for colour
    std: float | tuple[float, ...] = 1.0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]


DATASETS: Registry[Callable[[Path], Dataset]] = Registry("dataset")


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where datasets live: an explicit path, else $HARNESS_DATA, else ./data."""
    return Path(explicit or os.environ.get("HARNESS_DATA") or "data").expanduser()


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


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (CUB archives and ResNet weights are hundreds of MB)."""
    make = (lambda: hashlib.md5(usedforsecurity=False)) if algorithm == "md5" else algorithm
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, make).hexdigest()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _torchvision_md5(class_name: str) -> dict[str, str]:
    import torchvision.datasets

    return dict(getattr(torchvision.datasets, class_name).resources)


def _find(source: IdxSource, root: Path) -> Path | None:
    """The first candidate directory holding all four files (as .gz or decompressed)."""
    for directory in [root / f for f in source.folders] + list(source.extra_dirs):
        if all((directory / f).exists() or (directory / f"{f}.gz").exists() for f in IDX_FILES):
            return directory
    return None


def _torchvision_fetch(class_name: str, root: Path) -> None:
    """Let torchvision fetch, md5-check and unpack a dataset into root; offline or refused is a clean miss."""
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, class_name)(str(root), train=True, download=True)
    # URLError and dropped connections are OSErrors; a cut-off transfer can surface as either of the others.
    except (OSError, RuntimeError, http.client.HTTPException, tarfile.TarError):
        pass


def _download(source: IdxSource, root: Path) -> Path | None:
    """Let torchvision fetch and md5-check the archives; None when the network does not allow it."""
    _torchvision_fetch(source.torchvision_class, root)
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
        gz_ok = _md5(packed) == md5_known
    else:
        content, gz_ok = raw_path.read_bytes(), False
    digest = hashlib.sha256(content).hexdigest()
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
        train=Split(_normalised(train_x, mean, std), torch.from_numpy(train_y.astype(np.int64))),
        test=Split(_normalised(test_x, mean, std), torch.from_numpy(test_y.astype(np.int64))),
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
DATASETS.register("mnist", functools.partial(load_idx, MNIST))
DATASETS.register("fashion_mnist", functools.partial(load_idx, FASHION_MNIST))


@dataclass(frozen=True)
class CifarSource:
    """A CIFAR "python version" dataset: its folder under the data root, its batch files and which labels to read."""

    name: str
    torchvision_class: str  # torchvision.datasets class that can download it and lists its md5s
    folder: str  # sub-folder of the data root, as the official archive (and torchvision) unpacks it
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str  # class names only; verified and recorded, never unpickled (nothing here needs it)
    label_key: bytes
    num_classes: int
    how_to_get: str  # "{root}" is replaced with the data root

    @property
    def files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files + (self.meta_file,)


CIFAR_IMAGE_SHAPE = (3, 32, 32)
# The only globals a CIFAR batch (a dict of a uint8 array and a list of ints) refers to: numpy's array
# reconstruction under its NumPy 1 (official files) and NumPy 2 names, and the codecs call that protocol-2
# pickles written by Python 3 use for bytes. Mapped to objects so that no module is imported on a pickle's say-so.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_CIFAR_PICKLE_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    ("codecs", "encode"): codecs.encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """pickle.Unpickler that builds only numpy arrays: a batch file is data, never code to run."""

    def __init__(self, content: bytes, where: Path) -> None:
        # encoding="bytes": the official files come from Python 2, whose str keys and buffers stay bytes.
        super().__init__(io.BytesIO(content), encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str) -> object:
        try:
            return _CIFAR_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(f"{self.where}: the CIFAR reader refuses to unpickle {module}.{name} (a batch holds "
                            "only arrays and lists); delete it and fetch it again") from None


def _torchvision_cifar_md5(class_name: str) -> dict[str, str]:
    """md5 of each file of the official archive, as torchvision lists them (file name -> md5)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, class_name)
    return {name: md5 for name, md5 in cls.train_list + cls.test_list} | {cls.meta["filename"]: cls.meta["md5"]}


def _cifar_missing(source: CifarSource, root: Path) -> list[str]:
    return [f for f in source.files if not (root / source.folder / f).is_file()]


def _download_cifar(source: CifarSource, root: Path) -> None:
    _torchvision_fetch(source.torchvision_class, root)


def _read_cifar_verified(path: Path, md5_known: str | None) -> tuple[bytes, str]:
    """The file's bytes and sha256, refused unless its md5 is the official one (checked before any unpickling)."""
    content = path.read_bytes()
    md5 = _md5(content)
    if md5 != md5_known:
        raise DataError(f"{path} fails its checksum (md5 {md5}, the official file has {md5_known}); "
                        "delete it and fetch it again")
    return content, hashlib.sha256(content).hexdigest()


def _unpickle_batch(content: bytes, where: Path) -> dict:
    try:
        batch = _CifarUnpickler(content, where).load()
    except DataError:
        raise
    # A damaged pickle can fail in many ways (EOFError, UnpicklingError, ValueError, struct.error, ...);
    # all of them mean the same to the user.
    except Exception as exc:  # noqa: BLE001 (see above)
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise DataError(f"{where} is truncated or not a CIFAR batch ({detail}); delete it and fetch it again") from None
    if not isinstance(batch, dict):
        raise DataError(f"{where} is not a CIFAR batch (a {type(batch).__name__}, not a dict); fetch it again")
    return batch


def _batch_arrays(batch: dict, source: CifarSource, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch, checked for shape and range."""
    data, labels = batch.get(b"data"), batch.get(source.label_key)
    size = int(np.prod(CIFAR_IMAGE_SHAPE))
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == size):
        raise DataError(f"{where}: b'data' is not a uint8 array of {size} values per image; fetch it again")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise DataError(f"{where}: {source.label_key!r} is not a list of {len(data)} integers; fetch it again")
    label_array = np.asarray(labels, dtype=np.int64)
    if len(label_array) and (label_array.min() < 0 or label_array.max() >= source.num_classes):
        raise DataError(f"{where}: labels outside 0..{source.num_classes - 1}; fetch it again")
    # Each row is channel-major (1024 red, 1024 green, 1024 blue values), each plane row-major: CHW as stored.
    return data.reshape(-1, *CIFAR_IMAGE_SHAPE), label_array


def _read_cifar_split(source: CifarSource, directory: Path, files: tuple[str, ...], md5s: dict[str, str],
                      checksums: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        content, checksums[name] = _read_cifar_verified(directory / name, md5s.get(name))
        x, y = _batch_arrays(_unpickle_batch(content, directory / name), source, directory / name)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of [0, 1] pixels, in float64, one channel at a time to bound memory."""
    scaled = [images[:, c].astype(np.float64) / 255.0 for c in range(images.shape[1])]
    return tuple(float(x.mean()) for x in scaled), tuple(float(x.std()) for x in scaled)


def _normalised_channels(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    pixels = torch.from_numpy(images.astype(np.float32) / np.float32(255.0))
    shape = (1, len(mean), 1, 1)
    return pixels.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape)).contiguous()


def load_cifar(source: CifarSource, root: Path) -> Dataset:
    directory = root / source.folder
    if _cifar_missing(source, root):
        _download_cifar(source, root)
    missing = _cifar_missing(source, root)
    if missing:
        raise DataError(f"{source.name} not found: need {', '.join(source.files)} in {directory} (missing "
                        f"{', '.join(missing)}; download failed or offline); {source.how_to_get.format(root=root)}")
    md5s, checksums = _torchvision_cifar_md5(source.torchvision_class), {}
    train_x, train_y = _read_cifar_split(source, directory, source.train_files, md5s, checksums)
    test_x, test_y = _read_cifar_split(source, directory, source.test_files, md5s, checksums)
    _, checksums[source.meta_file] = _read_cifar_verified(directory / source.meta_file, md5s.get(source.meta_file))
    mean, std = _channel_stats(train_x)
    return Dataset(
        name=source.name,
        train=Split(_normalised_channels(train_x, mean, std), torch.from_numpy(train_y)),
        test=Split(_normalised_channels(test_x, mean, std), torch.from_numpy(test_y)),
        num_classes=source.num_classes,
        source=str(directory),
        checksums=checksums,
        mean=mean,
        std=std,
    )


CIFAR10 = CifarSource(
    name="cifar10",
    torchvision_class="CIFAR10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key=b"labels",
    num_classes=10,
    how_to_get="download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it into {root}, "
               "or run once with network access (torchvision downloads it there)",
)
CIFAR100 = CifarSource(
    name="cifar100",
    torchvision_class="CIFAR100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key=b"fine_labels",  # the 100 classes; b"coarse_labels" holds the 20 superclasses
    num_classes=100,
    how_to_get="download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract it into {root}, "
               "or run once with network access (torchvision downloads it there)",
)
DATASETS.register("cifar10", functools.partial(load_cifar, CIFAR10))
DATASETS.register("cifar100", functools.partial(load_cifar, CIFAR100))


def load_digits(root: Path) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, offline): a fixed stratified 70/30 split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=0.3, stratify=labels,
                                                        random_state=0)
    mean, std = float(train_x.mean()), float(train_x.std())
    checksum = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy((x - mean) / std).unsqueeze(1).contiguous(), torch.from_numpy(y))

    return Dataset("digits", split(train_x, train_y), split(test_x, test_y), 10, "sklearn.datasets.load_digits",
                   {"digits": checksum}, mean, std)


DATASETS.register("digits", load_digits)


@functools.lru_cache(maxsize=4)
def _cached(name: str, root: Path) -> Dataset:
    return DATASETS.get(name)(root)


def load(name: str, root: Path | None = None) -> Dataset:
    """The named dataset, read once per process (runs of a matrix share it; tensors are never modified)."""
    return _cached(name, data_root(root).resolve())


def balanced_subset(labels: torch.Tensor, per_class: int | None, seed: int, what: str) -> torch.Tensor:
    """Indices of `per_class` items of every class, drawn with a fixed seed; all indices when per_class is None."""
    if per_class is None:
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        if len(members) < per_class:
            raise ConfigError(f"data.{what}_per_class: {per_class} requested but class {label} has only "
                              f"{len(members)} {what} items")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.sort(torch.cat(chosen)).values


def subset(split: Split, indices: Sequence[int] | torch.Tensor, device: torch.device | str = "cpu") -> Split:
    """The items at `indices`; tensors move to `device`, image files stay paths (decoded per epoch)."""
    index = torch.as_tensor(indices)
    if hasattr(split, "paths"):
        return type(split)(tuple(split.paths[i] for i in index.tolist()), split.labels[index])
    return Split(split.images[index].to(device), split.labels[index].to(device))


# Image-file datasets (CUB-200-2011, Cars-196) register themselves here; imported last because they use DATASETS.
import harness.images  # noqa: E402,F401
