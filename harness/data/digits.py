"""scikit-learn's bundled 8x8 digits: offline, tiny; the smoke profiles' dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.data import Dataset, TensorSplit
from harness.files import bytes_hash


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
    checksum = bytes_hash(images.tobytes() + labels.tobytes())

    def split(x: np.ndarray, y: np.ndarray) -> TensorSplit:
        return TensorSplit(torch.from_numpy((x - mean) / std).unsqueeze(1).contiguous(), torch.from_numpy(y))

    return Dataset("digits", split(train_x, train_y), split(test_x, test_y), 10, "sklearn.datasets.load_digits",
                   {"digits": checksum}, mean, std)
