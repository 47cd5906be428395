"""Datasets: the split and dataset types, loading by name (harness.catalog.DATASETS), class-balanced subsets.

One loader module per family: `idx` (MNIST, Fashion-MNIST), `cifar` (CIFAR-10/100), `digits` (scikit-learn's
bundled digits), `folders` (CUB-200-2011, Cars-196 image files), `samples` (generated CUB/Cars samples).
A split says what it is (`kind`): "tensor" splits hold decoded, normalised images in memory; "files" splits
hold image paths decoded per epoch by the input pipeline (harness.pipeline).
"""

from __future__ import annotations

import dataclasses

import functools
import http.client
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from harness.catalog import DATASETS
from harness.errors import ConfigError, DataError


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """Decoded images in memory."""

    kind: ClassVar[str] = "tensor"
    images: torch.Tensor  # float32, (N, C, H, W), normalised with the training split's mean and std
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor, device: torch.device | str = "cpu") -> TensorSplit:
        """The items at `indices`, moved to `device` (a whole MNIST-sized split fits in device memory)."""
        return TensorSplit(self.images[indices].to(device), self.labels[indices].to(device))

    def item_shape(self, image_size: int) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class FileSplit:
    """Image files on disk and their labels (images are decoded only when a batch needs them)."""

    kind: ClassVar[str] = "files"
    paths: tuple[Path, ...]
    labels: torch.Tensor  # int64, (N,), 0-based class ids of the whole dataset (CUB test labels are 100..199)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: torch.Tensor, device: torch.device | str = "cpu") -> FileSplit:
        """The items at `indices`; paths stay paths and labels stay on the CPU (the loader moves batches)."""
        return FileSplit(tuple(self.paths[i] for i in indices.tolist()), self.labels[indices])

    def item_shape(self, image_size: int) -> tuple[int, int, int]:
        return (3, image_size, image_size)  # the crop the pipeline makes (RGB)


Split = TensorSplit | FileSplit


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int  # over both splits
    source: str  # the directory (or package) the files came from
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> sha256 (of decompressed content)
    mean: float | tuple[float, ...] = 0.0  # one value for greyscale, one per channel for colour
    std: float | tuple[float, ...] = 1.0

    def input_shape(self, image_size: int) -> tuple[int, int, int]:
        """What the model sees: a tensor dataset's image shape, or the crop of an image-file dataset."""
        return self.train.item_shape(image_size)


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where datasets live: an explicit path, else $HARNESS_DATA, else ./data."""
    return Path(explicit or os.environ.get("HARNESS_DATA") or "data").expanduser()


@functools.lru_cache(maxsize=4)
def _cached(name: str, root: Path) -> Dataset:
    return DATASETS.get(name)(root)


def load(name: str, root: Path | None = None) -> Dataset:
    """The named dataset, read once per process (runs of a matrix share it; tensors are never modified)."""
    try:
        return _cached(name, data_root(root).resolve())
    except OSError as exc:  # a folder where a file should be, no permission, an I/O error
        where = exc.filename or data_root(root)
        raise DataError(f"{name}: cannot read {where} ({exc.strerror or exc}); check that it is a readable file, "
                        "or delete it and fetch the dataset again") from None


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


def training_items(labels: torch.Tensor, seen: Sequence[int], per_class: int | None, val_per_class: int | None,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(training indices, validation indices or None) among the items of the seen classes.

    The validation items are drawn per class first (val_per_class), the training subset (per_class) from what
    is left, both with `seed`: the two never share an item.
    """
    pool = torch.nonzero(torch.isin(labels, torch.tensor(list(seen)))).flatten()
    val = None
    if val_per_class is not None:
        chosen = balanced_subset(labels[pool], val_per_class, seed, "val")
        val = pool[chosen]
        keep = torch.ones(len(pool), dtype=torch.bool)
        keep[chosen] = False
        pool = pool[keep]
    return pool[balanced_subset(labels[pool], per_class, seed, "train")], val


def torchvision_fetch(class_name: str, root: Path) -> None:
    """Let torchvision fetch, md5-check and unpack a dataset into root; offline or refused is a clean miss."""
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, class_name)(str(root), train=True, download=True)
    # URLError and dropped connections are OSErrors; a cut-off transfer can surface as either of the others.
    except (OSError, RuntimeError, http.client.HTTPException, tarfile.TarError):
        pass


@dataclass(frozen=True, eq=False)
class RunSplits:
    """The items one run trains, validates and is scored on."""

    seen: list[int]  # the classes it trains on
    train: Split
    test: Split  # test items of the seen classes
    val: Split | None  # held out of the seen classes' training items (data.val_per_class)
    unseen: Split | None  # test items of the classes data.split leaves out
    val_classes: list[int] = field(default_factory=list)  # held out whole for validation (data.val_classes)


def permuted(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """The labels in a seeded random order: each item keeps an image and gets another item's label, so every
    class keeps its size and the images of a class no longer share anything but chance."""
    generator = torch.Generator().manual_seed(seed + 7919)  # not the subset's stream: another permutation
    return labels[torch.randperm(len(labels), generator=generator).to(labels.device)]


def run_splits(dataset: Dataset, data_cfg: object, device: torch.device | str = "cpu") -> RunSplits:
    """Class split, subsets and device placement of one run, from its data config."""
    from harness import splits

    seen = splits.seen_classes(data_cfg.split, dataset.num_classes)
    held_out: list[int] = []
    if getattr(data_cfg, "val_classes", None) is not None:
        if data_cfg.val_classes >= len(seen):
            raise ConfigError(f"data.val_classes: {data_cfg.val_classes} validation classes leave none of the "
                              f"{len(seen)} seen classes to train on")
        seen, held_out = seen[:-data_cfg.val_classes], seen[-data_cfg.val_classes:]
    fold = getattr(data_cfg, "val_fold", None)
    if fold is not None:
        held_out = seen[fold["fold"]::fold["folds"]]
        if len(held_out) == len(seen) or not held_out:
            raise ConfigError(f"data.val_fold: {fold['folds']} folds of {len(seen)} seen classes leave no class "
                              "to train on or none to validate on")
        seen = [c for c in seen if c not in held_out]
    train_idx, val_idx = training_items(dataset.train.labels, seen, data_cfg.train_per_class,
                                        data_cfg.val_per_class, data_cfg.subset_seed)
    if held_out:  # the held-out classes' training items, subset like the training classes'
        val_idx, _ = training_items(dataset.train.labels, held_out, data_cfg.train_per_class, None,
                                    data_cfg.subset_seed)
    test_idx = balanced_subset(dataset.test.labels, data_cfg.test_per_class, data_cfg.subset_seed, "test")
    test_labels = dataset.test.labels[test_idx]
    seen_test = torch.isin(test_labels, torch.tensor(seen))
    # Test items of validation classes are scored nowhere: model selection must not touch the test classes.
    unseen_test = ~seen_test & ~torch.isin(test_labels, torch.tensor(held_out, dtype=test_labels.dtype))
    train = dataset.train.subset(train_idx, device)
    if getattr(data_cfg, "permute_labels", False):
        train = dataclasses.replace(train, labels=permuted(train.labels, data_cfg.subset_seed))
    return RunSplits(
        seen=seen,
        train=train,
        test=dataset.test.subset(test_idx[seen_test], device),
        val=dataset.train.subset(val_idx, device) if val_idx is not None else None,
        unseen=dataset.test.subset(test_idx[unseen_test], device) if unseen_test.any() else None,
        val_classes=held_out,
    )
