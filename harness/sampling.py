"""Batch orders, by name (harness.catalog.SAMPLERS): each epoch's sequence of training indices.

Every sampler draws only from the run's batch-order generator, so evaluation or anything else that draws random
numbers cannot move the batches, and a checkpoint of that generator resumes the order exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from harness.errors import ConfigError


def random_order(labels: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A shuffled pass over the training items."""
    return torch.randperm(len(labels), generator=generator)


@contextlib.contextmanager
def _pml_numpy_random(state: np.random.RandomState) -> Iterator[None]:
    """pytorch-metric-learning draws from its module-level NUMPY_RANDOM (numpy's global generator by default);
    point it at `state` for the duration, so the sampler's draws follow the run's generator alone."""
    from pytorch_metric_learning.utils import common_functions

    before = common_functions.NUMPY_RANDOM
    common_functions.NUMPY_RANDOM = state
    try:
        yield
    finally:
        common_functions.NUMPY_RANDOM = before


def m_per_class(labels: torch.Tensor, batch_size: int, generator: torch.Generator, m: int = 4) -> torch.Tensor:
    """pytorch-metric-learning's MPerClassSampler: every batch holds batch_size / m classes with m items each."""
    from pytorch_metric_learning.samplers import MPerClassSampler

    check_m_per_class(batch_size, m)
    classes = len(torch.unique(labels))
    if m * classes < batch_size:
        raise ConfigError(f"train.sampler: m = {m} items of each of the {classes} training classes cannot fill a "
                          f"batch of {batch_size}; lower train.batch_size to at most {m * classes}")
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    with _pml_numpy_random(np.random.RandomState(seed)):
        sampler = MPerClassSampler(labels.cpu(), m, batch_size=batch_size, length_before_new_iter=len(labels))
        return torch.tensor(list(iter(sampler)), dtype=torch.int64)


def check_m_per_class(batch_size: int, m: int = 4, **_: Any) -> None:
    """What the spec can check before any data is read: m divides the batch."""
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ConfigError(f"train.sampler.m: expected a positive integer, got {m!r}")
    if batch_size % m:
        raise ConfigError(f"train.sampler: batch_size {batch_size} is not a multiple of m = {m}")


# Checks a sampler's arguments against the batch size at load time (before any compute is spent).
m_per_class.check_config = check_m_per_class  # type: ignore[attr-defined]
