"""sampling: batch orders drawn from the run's generator alone; N x K batches as pytorch-metric-learning builds them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from harness import sampling
from harness.errors import ConfigError

LABELS = torch.arange(12).repeat_interleave(10)  # 12 classes, 10 items each


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_order_is_a_permutation_set_by_the_generator_alone():
    order = sampling.random_order(LABELS, 32, generator())
    assert sorted(order.tolist()) == list(range(len(LABELS)))
    torch.manual_seed(123)  # the global generators do not move it
    np.random.seed(123)
    assert torch.equal(sampling.random_order(LABELS, 32, generator()), order)
    assert not torch.equal(sampling.random_order(LABELS, 32, generator(1)), order)


def test_m_per_class_batches_hold_batch_over_m_classes_with_m_items_each():
    order = sampling.m_per_class(LABELS, 12, generator(), m=3)
    batches = order[: len(order) // 12 * 12].view(-1, 12)
    for batch in batches:
        counts = Counter(LABELS[batch].tolist())
        assert len(counts) == 4 and set(counts.values()) == {3}


def test_m_per_class_follows_the_run_generator_and_leaves_pml_and_numpy_as_they_were():
    from pytorch_metric_learning.utils import common_functions

    before = common_functions.NUMPY_RANDOM
    np.random.seed(5)
    expected_global = np.random.random()
    np.random.seed(5)
    first = sampling.m_per_class(LABELS, 12, generator(7), m=3)
    assert np.random.random() == expected_global  # numpy's global stream untouched
    assert common_functions.NUMPY_RANDOM is before
    assert torch.equal(sampling.m_per_class(LABELS, 12, generator(7), m=3), first)
    assert not torch.equal(sampling.m_per_class(LABELS, 12, generator(8), m=3), first)


@pytest.mark.parametrize("batch, m, message", [(12, 5, "not a multiple of m = 5"), (12, 0, "positive integer"),
                                               (12, True, "positive integer"), (240, 4, "cannot fill a batch")])
def test_m_per_class_settings_that_cannot_work_are_one_line(batch, m, message):
    with pytest.raises(ConfigError, match=message):
        sampling.m_per_class(LABELS, batch, generator(), m=m)
