"""Input checks every metric family shares: one clear line for any input that would give a wrong number or a crash."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.catalog import DISTANCES
from harness.errors import HarnessError


def check_embeddings(name: str, x: Any, labels: Any) -> None:
    """Embeddings (a numpy array or a torch tensor) must be a non-empty (n, d) array of finite real numbers with
    one label each."""
    shape = tuple(x.shape)
    if len(shape) != 2 or 0 in shape:
        raise HarnessError(f"{name}: expected a non-empty (n, d) array of embeddings, got shape {shape}")
    labels = np.asarray(labels)
    if labels.shape != (shape[0],):
        raise HarnessError(f"{name}: {shape[0]} embeddings but labels of shape {labels.shape}")
    if np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        # NaN never equals itself: every NaN label would be a class of one, and the metrics would say otherwise
        raise HarnessError(f"{name}: labels contain NaN or infinite values; give class ids")
    if hasattr(x, "isfinite"):  # a torch tensor: checked where it lives (a CUDA tensor stays on its GPU)
        finite = bool(x.isfinite().all())
    else:
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise HarnessError(f"{name}: embeddings must be real numbers, got dtype {x.dtype}")
        finite = bool(np.isfinite(x).all())
    if not finite:
        raise HarnessError(f"{name}: embeddings contain NaN or infinite values")


def check_distance_name(distance: str, name: str = "evaluate") -> None:
    if distance not in DISTANCES:
        raise HarnessError(f"{name}: unknown distance '{distance}'; known: {', '.join(DISTANCES)}")
