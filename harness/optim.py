"""Optimizers and learning-rate schedules, by name (harness.catalog): `optimizer:` and `train.lr_schedule:`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def adam(params: Iterable[torch.nn.Parameter], lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def sgd(params: Iterable[torch.nn.Parameter], lr: float = 0.01, momentum: float = 0.0,
        weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def constant(optimizer: torch.optim.Optimizer) -> None:
    """No schedule: the optimizer's learning rate throughout."""
    return None


def step(optimizer: torch.optim.Optimizer, step_size: int = 5, gamma: float = 0.1) -> Any:
    """The learning rate times gamma every step_size epochs (the seed-001 script's schedule)."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
