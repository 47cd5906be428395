"""pytorch-metric-learning wiring: losses, miners, distances and reducers named in configs, validated and built."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional as F
from pytorch_metric_learning import losses

from harness.catalog import LOSS_DISTANCES, LOSSES, MINERS, REDUCERS
from harness.registry import Registry, constructor_args


class ArcFace(losses.ArcFaceLoss):
    """pytorch-metric-learning's ArcFaceLoss with the margin m in radians and the scale s, as the ArcFace paper
    (Deng et al. 2019) and our study axes state them (PML takes the margin in degrees).

    Logits are s * cos(theta_y + m) for the target class and s * cos(theta_j) for the others, with the
    embeddings and the class weights L2-normalised. PML keeps the target logit decreasing past theta = pi - m
    (cos(theta) - m sin(m) there); the seed-002 notebook did not, which matters only for angles near pi.
    `get_logits` gives s * cos(theta_j) without the margin: its argmax is the predicted class.
    """

    own_args_only = True  # m and s replace PML's margin and scale; passing those too would be ambiguous

    def __init__(self, num_classes: int, embedding_size: int, m: float = 0.5, s: float = 64.0) -> None:
        super().__init__(num_classes=num_classes, embedding_size=embedding_size, margin=math.degrees(m), scale=s)


class SoftmaxCrossEntropy(torch.nn.Module):
    """The plain classification head: Linear(embedding_size, num_classes) + cross-entropy (no normalisation,
    no margin), the baseline ArcFace is compared with. `get_logits` gives the linear layer's output."""

    def __init__(self, num_classes: int, embedding_size: int, bias: bool = True) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(embedding_size, num_classes, bias=bias)

    def get_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.fc(embeddings)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: Any = None) -> torch.Tensor:
        return F.cross_entropy(self.get_logits(embeddings), labels)


def class_scores(head: torch.nn.Module, embeddings: torch.Tensor) -> torch.Tensor:
    """Per-class scores where larger means more likely, from a head's `get_logits`.

    PML heads built on a distance (ProxyAnchor with an Lp distance) return distances from get_logits:
    smaller is closer there, so they are negated.
    """
    logits = head.get_logits(embeddings)
    distance = getattr(head, "distance", None)
    return -logits if distance is not None and not distance.is_inverted else logits


def has_classifier(spec: Mapping[str, Any]) -> bool:
    """Whether a loss spec carries a classifier head (a `get_logits`), so classification accuracy is defined."""
    return callable(getattr(LOSSES.get(spec["name"]), "get_logits", None))


# Keys of a component mapping that name nested components rather than constructor arguments.
_NESTED = {"distance": LOSS_DISTANCES, "reducer": REDUCERS}
# Arguments filled from the data and model when a component requires them and the config leaves them out.
CONTEXT_ARGS = ("num_classes", "embedding_size")


def check_component(spec: Any, registry: Registry[type], where: str) -> None:
    """Raise ConfigError naming `where` if `spec` ({name: ..., arg: value, distance: {...}}) would not build."""
    registry.check(spec, where, nested=_NESTED)


def build_component(spec: Mapping[str, Any] | None, registry: Registry[type],
                    context: Mapping[str, Any] | None = None) -> Any:
    """Instantiate a validated component spec; required context arguments (num_classes...) are filled in."""
    if spec is None:
        return None
    cls = registry.get(spec["name"])
    allowed = constructor_args(cls)
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "name":
            continue
        kwargs[key] = build_component(value, _NESTED[key]) if key in _NESTED else value
    for key in CONTEXT_ARGS:
        if key in allowed and key not in kwargs and allowed[key].default is inspect.Parameter.empty:
            kwargs[key] = (context or {})[key]
    return cls(**kwargs)


def build_loss(spec: Mapping[str, Any], *, num_classes: int, embedding_size: int) -> torch.nn.Module:
    return build_component(spec, LOSSES, {"num_classes": num_classes, "embedding_size": embedding_size})


def build_miner(spec: Mapping[str, Any] | None) -> torch.nn.Module | None:
    return build_component(spec, MINERS)
