"""The metric functions named in harness.catalog.METRICS: each takes one call's Inputs and returns named floats.

The neighbour ranking of a call is computed once, on first use, and shared by every retrieval metric.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.catalog import DEFAULT_RECALL_KS
from harness.errors import HarnessError
from harness.evaluate import clustering, pairs, retrieval


@dataclass
class Inputs:
    """One call's embeddings and options; the neighbour ranking is computed once, on first use."""

    query: np.ndarray | torch.Tensor
    query_labels: np.ndarray
    reference: np.ndarray | torch.Tensor | None
    reference_labels: np.ndarray | None
    knn_k: int = 3
    recall_ks: Sequence[int] = DEFAULT_RECALL_KS
    distance: str = "euclidean"
    seed: int = 0
    progress: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # per-family extras (n_way, k_shot, n_pairs...)

    @functools.cached_property
    def ranking(self) -> retrieval.Ranking:
        return retrieval.rank(self.query, self.query_labels, self.reference, self.reference_labels,
                              knn_k=max(self.knn_k, 1), distance=self.distance, progress=self.progress)

    @functools.cached_property
    def answerable(self) -> np.ndarray:
        """Queries with at least one same-label reference: the ones retrieval metrics are averaged over."""
        mask = self.ranking.relevant > 0
        if not mask.any():
            raise HarnessError("no query has a reference with the same label: retrieval metrics are undefined")
        return mask

    def numpy_query(self) -> np.ndarray:
        return self.query.float().cpu().numpy() if isinstance(self.query, torch.Tensor) else self.query




def precision_at_1(inputs: Inputs) -> dict[str, float]:
    return {"precision_at_1": float((inputs.ranking.first_relevant_rank[inputs.answerable] == 1).mean())}


def recall_at_k(inputs: Inputs) -> dict[str, float]:
    first = inputs.ranking.first_relevant_rank[inputs.answerable]
    return {f"recall_at_{k}": float(((first >= 1) & (first <= k)).mean()) for k in inputs.recall_ks}


def map_at_r(inputs: Inputs) -> dict[str, float]:
    return {"map_at_r": float(inputs.ranking.ap_at_r[inputs.answerable].mean())}


def r_precision(inputs: Inputs) -> dict[str, float]:
    return {"r_precision": float(inputs.ranking.r_precision[inputs.answerable].mean())}


def knn_accuracy(inputs: Inputs) -> dict[str, float]:
    votes = inputs.ranking.knn_labels[:, : inputs.knn_k]
    truth = inputs.ranking.query_labels
    classes = np.unique(np.concatenate([votes.ravel(), truth]))
    counts = np.zeros((len(votes), len(classes)), dtype=np.int64)
    np.add.at(counts, (np.arange(len(votes))[:, None], np.searchsorted(classes, votes)), 1)
    # argmax returns the first maximum: with classes sorted, a tied vote goes to the smallest label.
    return {"knn_accuracy": float((classes[counts.argmax(axis=1)] == truth).mean())}


def excluded_queries(inputs: Inputs) -> dict[str, float]:
    return {"excluded_queries": float((inputs.ranking.relevant == 0).sum())}


def nmi(inputs: Inputs) -> dict[str, float]:
    return clustering.nmi_ami(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed, distance=inputs.distance)


def verification(inputs: Inputs) -> dict[str, float]:
    keys = ("n_pairs", "validation_fraction", "fixed_threshold")
    return pairs.verification(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed, distance=inputs.distance,
                              **{k: inputs.options[k] for k in keys if k in inputs.options})


def triplet_accuracy(inputs: Inputs) -> dict[str, float]:
    keys = ("n_triplets",)
    return {"triplet_accuracy": pairs.triplet_accuracy(
        inputs.numpy_query(), inputs.query_labels, seed=inputs.seed, distance=inputs.distance,
        **{k: inputs.options[k] for k in keys if k in inputs.options})}


def episode_accuracy(inputs: Inputs) -> dict[str, float]:
    keys = ("n_way", "k_shot", "n_queries", "n_episodes", "classifier", "classes")
    options = {k: inputs.options[k] for k in keys if k in inputs.options}
    if options.get("n_way") == "all":  # every eligible class in each episode: N = the number of classes
        options["n_way"] = len(pairs.episode_classes(inputs.query_labels, options.get("k_shot", 1),
                                                     options.get("classes")))
    values = pairs.n_way_k_shot(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed,
                                distance=inputs.distance, **options)
    return {**values, "episode_chance": pairs.chance_level(options.get("n_way", 5))}


def original_few_shot(inputs: Inputs) -> dict[str, float]:
    return pairs.original_few_shot(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed,
                                   n_queries=inputs.options.get("few_shot_queries", 1000),
                                   threshold=inputs.options.get("few_shot_threshold", 0.2))


# One k-means gives both clustering scores.
ami = nmi
