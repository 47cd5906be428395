"""optim: the optimizers and schedules a study names, as torch builds them."""

from __future__ import annotations

import pytest
import torch

from harness import catalog, optim


def params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(3))]


def test_optimizers_carry_the_study_settings():
    adam = optim.adam(params(), lr=0.01, weight_decay=1e-4)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 0.01 and adam.defaults["weight_decay"] == 1e-4
    sgd = optim.sgd(params(), lr=0.1, momentum=0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 0


def test_step_schedule_multiplies_the_rate_by_gamma_every_step_size_epochs():
    optimizer = optim.sgd(params(), lr=1.0)
    schedule = optim.step(optimizer, step_size=2, gamma=0.5)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])
    assert optim.constant(optimizer) is None


def test_the_catalog_names_these_factories():
    assert catalog.OPTIMIZERS.get("adam") is optim.adam and catalog.SCHEDULES.get("step") is optim.step
