"""Class splits, by name: which classes a run trains on ("seen") and which it never sees ("unseen").

A split is a component like a loss: `data.split: {name: first, seen: 20}`. The model trains on the training
items of the seen classes; test items of the seen classes feed `eval.metrics`, test items of the unseen classes
feed `eval.unseen_metrics`. Labels keep their dataset values (no renumbering), so a classifier head sized for
every class simply never sees the unseen ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.catalog import SPLITS
from harness.errors import ConfigError


def all_classes(num_classes: int) -> list[int]:
    """Every class is seen (no unseen classes): the ordinary closed-set protocol."""
    return list(range(num_classes))


def first(num_classes: int, seen: int) -> list[int]:
    """The first `seen` class indices (the seed-004 project's "X-Y" split: train on classes 0..X-1)."""
    _check(seen, num_classes)
    return list(range(seen))


def random_classes(num_classes: int, seen: int, seed: int = 0) -> list[int]:
    """`seen` classes drawn with their own seed (fixed across run seeds, so every seed sees the same classes)."""
    _check(seen, num_classes)
    return sorted(np.random.default_rng(seed).choice(num_classes, seen, replace=False).tolist())


def _check(seen: int, num_classes: int) -> None:
    if isinstance(seen, bool) or not isinstance(seen, int) or not 1 <= seen <= num_classes:
        raise ConfigError(f"data.split.seen: {seen} seen classes requested but the dataset has {num_classes} "
                          f"(use 1..{num_classes})")


def seen_classes(spec: Mapping[str, Any], num_classes: int) -> list[int]:
    try:
        return SPLITS.build(spec, num_classes)
    except TypeError as exc:  # a required split argument left out
        raise ConfigError(f"data.split: {exc}") from None
