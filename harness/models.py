"""Embedding networks, by name: each factory takes the input shape and its config arguments, returns a fresh module."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from harness.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


class ThesisConvNet(nn.Module):
    """The seed-000 network: conv32, conv64, maxpool, dropout, one linear layer, L2-normalised output.

    The linear layer's input size is computed from the input shape (9216 for 28x28 images), so the same
    architecture also runs on 8x8 digits in the smoke profile.
    """

    def __init__(self, input_shape: tuple[int, int, int], embedding_dim: int = 128, dropout: float = 0.25,
                 normalize: bool = True) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout = nn.Dropout2d(dropout)
        flat = 64 * ((height - 4) // 2) * ((width - 4) // 2)
        self.fc = nn.Linear(flat, embedding_dim)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout(F.max_pool2d(x, 2))
        x = self.fc(torch.flatten(x, 1))
        return F.normalize(x, p=2, dim=1) if self.normalize else x


MODELS.register("thesis_convnet", ThesisConvNet)


def check_model(spec: Any, where: str) -> None:
    """Raise ConfigError unless `spec` names a registered model with arguments it accepts."""
    MODELS.check(spec, where)


def build_model(spec: Mapping[str, Any], input_shape: tuple[int, int, int]) -> nn.Module:
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return MODELS.get(spec["name"])(input_shape, **kwargs)


def embedding_dim(spec: Mapping[str, Any]) -> int:
    """The output size a model spec declares (its `embedding_dim` argument or that argument's default)."""
    if "embedding_dim" in spec:
        return int(spec["embedding_dim"])
    return int(inspect.signature(MODELS.get(spec["name"])).parameters["embedding_dim"].default)
