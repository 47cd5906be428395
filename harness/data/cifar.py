"""CIFAR-10/100 ("python version" batches): md5-checked before a restricted unpickler reads them, in memory."""

from __future__ import annotations

import codecs
import functools
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.data import Dataset, TensorSplit, torchvision_fetch
from harness.errors import DataError
from harness.files import bytes_hash


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
    torchvision_fetch(source.torchvision_class, root)


def _read_cifar_verified(path: Path, md5_known: str | None) -> tuple[bytes, str]:
    """The file's bytes and sha256, refused unless its md5 is the official one (checked before any unpickling)."""
    content = path.read_bytes()
    md5 = bytes_hash(content, "md5")
    if md5 != md5_known:
        raise DataError(f"{path} fails its checksum (md5 {md5}, the official file has {md5_known}); "
                        "delete it and fetch it again")
    return content, bytes_hash(content)


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
        train=TensorSplit(_normalised_channels(train_x, mean, std), torch.from_numpy(train_y)),
        test=TensorSplit(_normalised_channels(test_x, mean, std), torch.from_numpy(test_y)),
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
load_cifar10 = functools.partial(load_cifar, CIFAR10)
load_cifar100 = functools.partial(load_cifar, CIFAR100)
