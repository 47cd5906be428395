"""Embeddings -> metrics: pure functions on arrays; one exact neighbour ranking serves every retrieval metric of a call.

Retrieval metrics (query set against a reference set, or a set against itself with each item excluded from its
own neighbours) come from harness.evaluate.retrieval; pair, triplet and episode metrics from
harness.evaluate.pairs; clustering metrics from harness.evaluate.clustering. Definitions:

- precision_at_1: the nearest reference has the query's label (= Recall@1).
- recall_at_k: for each K in `recall_ks`, a reference with the query's label is among the K nearest (the DML
  definition of Recall@K, a hit rate, not the information-retrieval recall).
- map_at_r, r_precision: Musgrave et al., "A Metric Learning Reality Check" (ECCV 2020), R = number of references
  sharing the query's label.
- These four average over queries that have at least one same-label reference (as pytorch-metric-learning does);
  queries whose label is absent from the reference set are left out of them and counted in `excluded_queries`.
- knn_accuracy: majority vote of the knn_k nearest references; a tied vote goes to the smallest label
  (scikit-learn's KNeighborsClassifier rule). Every query counts: one whose label is absent is simply wrong.
- nmi, ami: k-means (faiss) with as many clusters as labels, scored with scikit-learn's mutual-information scores.
- verification: balanced same/different pairs; threshold chosen on a validation split of the items, applied to
  the test split; also ROC AUC. triplet_accuracy: d(a, p) < d(a, n) on sampled triplets.
- episode_accuracy: seeded N-way K-shot episodes; queries labelled by the nearest support; mean and 95% CI;
  n_way "all" takes every eligible class; episode_chance = 1 / N.
- original_few_shot: the seed-004 project's "mean few-shot accuracy" as its code computed it (cosine > 0.2 means
  "same"), with always_different_accuracy on the same pairs, the baseline that beats it.
- classification_accuracy (HEAD_METRICS): argmax of a classifier head's logits; computed by the training loop.
Distances: "euclidean" or "cosine" for all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.evaluate import retrieval
from harness.registry import Registry

DISTANCES = retrieval.DISTANCES
DEFAULT_RECALL_KS = (1, 2, 4, 8, 16, 32)
# Metrics that classify test items by their neighbours in the training split; the others rank the test split
# against itself (retrieval), as in the Metric Learning Reality Check protocol.
TRAIN_REFERENCE_METRICS = frozenset({"knn_accuracy"})
# Metrics of a classifier head's logits rather than of the embeddings (computed by the training loop).
HEAD_METRICS = ("classification_accuracy",)
# Options a call (or a study's eval.options) may pass to the metric families.
OPTIONS = ("n_pairs", "validation_fraction", "n_triplets", "n_way", "k_shot", "n_queries", "n_episodes",
           "classifier", "classes", "few_shot_queries", "few_shot_threshold")
# Prefixes of metrics computed on other parts of the data than the test items of the seen classes.
PREFIXES = ("val_", "unseen_")


def _as_array(name: str, x: Any) -> np.ndarray | torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise HarnessError(f"{name}: expected a numeric (n, d) array") from None


def check_embeddings(name: str, x: np.ndarray | torch.Tensor, labels: np.ndarray) -> None:
    """One clear line for every input that would otherwise give a wrong number or a cryptic crash."""
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise HarnessError(f"{name}: expected a non-empty (n, d) array, got shape {tuple(x.shape)}")
    if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise HarnessError(f"{name}: {x.shape[0]} embeddings but labels of shape {labels.shape}")
    finite = torch.isfinite(x).all().item() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not finite:
        raise HarnessError(f"{name}: embeddings contain NaN or infinite values")


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


Metric = Callable[[Inputs], dict[str, float]]
METRICS: Registry[Metric] = Registry("metric")


def _precision_at_1(inputs: Inputs) -> dict[str, float]:
    return {"precision_at_1": float((inputs.ranking.first_relevant_rank[inputs.answerable] == 1).mean())}


def _recall_at_k(inputs: Inputs) -> dict[str, float]:
    first = inputs.ranking.first_relevant_rank[inputs.answerable]
    return {f"recall_at_{k}": float(((first >= 1) & (first <= k)).mean()) for k in inputs.recall_ks}


def _map_at_r(inputs: Inputs) -> dict[str, float]:
    return {"map_at_r": float(inputs.ranking.ap_at_r[inputs.answerable].mean())}


def _r_precision(inputs: Inputs) -> dict[str, float]:
    return {"r_precision": float(inputs.ranking.r_precision[inputs.answerable].mean())}


def _knn_accuracy(inputs: Inputs) -> dict[str, float]:
    votes = inputs.ranking.knn_labels[:, : inputs.knn_k]
    truth = inputs.ranking.query_labels
    classes = np.unique(np.concatenate([votes.ravel(), truth]))
    counts = np.zeros((len(votes), len(classes)), dtype=np.int64)
    np.add.at(counts, (np.arange(len(votes))[:, None], np.searchsorted(classes, votes)), 1)
    # argmax returns the first maximum: with classes sorted, a tied vote goes to the smallest label.
    return {"knn_accuracy": float((classes[counts.argmax(axis=1)] == truth).mean())}


def _excluded(inputs: Inputs) -> dict[str, float]:
    return {"excluded_queries": float((inputs.ranking.relevant == 0).sum())}


def _clustering(inputs: Inputs) -> dict[str, float]:
    from harness.evaluate import clustering

    return clustering.nmi_ami(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed, distance=inputs.distance)


def _verification(inputs: Inputs) -> dict[str, float]:
    from harness.evaluate import pairs

    keys = ("n_pairs", "validation_fraction")
    return pairs.verification(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed, distance=inputs.distance,
                              **{k: inputs.options[k] for k in keys if k in inputs.options})


def _triplet_accuracy(inputs: Inputs) -> dict[str, float]:
    from harness.evaluate import pairs

    keys = ("n_triplets",)
    return {"triplet_accuracy": pairs.triplet_accuracy(
        inputs.numpy_query(), inputs.query_labels, seed=inputs.seed, distance=inputs.distance,
        **{k: inputs.options[k] for k in keys if k in inputs.options})}


def _episode_accuracy(inputs: Inputs) -> dict[str, float]:
    from harness.evaluate import pairs

    keys = ("n_way", "k_shot", "n_queries", "n_episodes", "classifier", "classes")
    options = {k: inputs.options[k] for k in keys if k in inputs.options}
    if options.get("n_way") == "all":  # every eligible class in each episode: N = the number of classes
        options["n_way"] = len(pairs.episode_classes(inputs.query_labels, options.get("k_shot", 1),
                                                     options.get("classes")))
    values = pairs.n_way_k_shot(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed,
                                distance=inputs.distance, **options)
    return {**values, "episode_chance": pairs.chance_level(options.get("n_way", 5))}


def _original_few_shot(inputs: Inputs) -> dict[str, float]:
    from harness.evaluate import pairs

    return pairs.original_few_shot(inputs.numpy_query(), inputs.query_labels, seed=inputs.seed,
                                   n_queries=inputs.options.get("few_shot_queries", 1000),
                                   threshold=inputs.options.get("few_shot_threshold", 0.2))


METRICS.register_all({
    "precision_at_1": _precision_at_1,
    "recall_at_k": _recall_at_k,
    "map_at_r": _map_at_r,
    "r_precision": _r_precision,
    "knn_accuracy": _knn_accuracy,
    "excluded_queries": _excluded,
    "nmi": _clustering,
    "ami": _clustering,
    "verification": _verification,
    "triplet_accuracy": _triplet_accuracy,
    "episode_accuracy": _episode_accuracy,
    "original_few_shot": _original_few_shot,
})
# What each metric writes into a record (a table or figure refers to these names).
OUTPUTS = {
    "recall_at_k": tuple(f"recall_at_{k}" for k in DEFAULT_RECALL_KS),
    "verification": ("verification_accuracy", "verification_threshold", "roc_auc"),
    "episode_accuracy": ("episode_accuracy", "episode_ci95", "episodes", "episode_chance"),
    "original_few_shot": ("original_few_shot_accuracy", "always_different_accuracy"),
}


def result_names() -> list[str]:
    """Every name a record's metrics can carry, prefixed ones included."""
    names = [out for name in [*METRICS, *HEAD_METRICS] for out in OUTPUTS.get(name, (name,))]
    return sorted({*names, *(prefix + n for prefix in PREFIXES for n in names)})


def classification_accuracy(logits: Any, labels: Any) -> float:
    """Fraction of items whose largest logit is their label (a tie goes to the smaller class index)."""
    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels, device=logits.device)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise HarnessError(f"classification_accuracy: {tuple(logits.shape)} logits for {len(labels)} labels")
    return float((logits.argmax(dim=1) == labels).float().mean())
RETRIEVAL_METRICS = ("precision_at_1", "recall_at_k", "map_at_r", "r_precision", "knn_accuracy")


def evaluate(query: Any, query_labels: Any, reference: Any = None, reference_labels: Any = None, *,
             metrics: Sequence[str], knn_k: int = 3, recall_ks: Sequence[int] = DEFAULT_RECALL_KS,
             distance: str = "euclidean", seed: int = 0, progress: bool = False,
             **options: Any) -> dict[str, float]:
    """Every requested metric of `query` against `reference` (or against itself, self excluded), as floats.

    Embeddings may be numpy arrays or torch tensors (CUDA tensors are ranked on their GPU). Bad input raises
    HarnessError with one line: NaN/inf, mismatched lengths, wrong dimensions, empty arrays, a single class.
    """
    for name in metrics:
        METRICS.get(name)
    if distance not in DISTANCES:
        raise HarnessError(f"unknown distance '{distance}'; known: {', '.join(DISTANCES)}")
    if knn_k < 1 or any(k < 1 for k in recall_ks):
        raise HarnessError(f"k values must be positive integers, got knn_k={knn_k}, recall_ks={list(recall_ks)}")
    query = _as_array("query", query)
    query_labels = np.asarray(query_labels)
    check_embeddings("query", query, query_labels)
    if (reference is None) != (reference_labels is None):
        raise HarnessError("give both reference and reference_labels, or neither (the query set is then its own "
                           "reference, each item excluded from its own neighbours)")
    if reference is not None:
        reference = _as_array("reference", reference)
        reference_labels = np.asarray(reference_labels)
        check_embeddings("reference", reference, reference_labels)
        if reference.shape[1] != query.shape[1]:
            raise HarnessError(f"query has {query.shape[1]} dimensions but reference has {reference.shape[1]}")
        if isinstance(query, torch.Tensor) != isinstance(reference, torch.Tensor):
            reference = torch.as_tensor(reference, device=query.device) if isinstance(query, torch.Tensor) \
                else reference.float().cpu().numpy()
    labels = query_labels if reference_labels is None else reference_labels
    if len(np.unique(labels)) < 2:
        raise HarnessError("all labels are the same class: metrics that compare classes are undefined "
                           "(need at least two classes)")
    if reference is None and len(query_labels) < 2:
        raise HarnessError("a set ranked against itself needs at least two items")
    inputs = Inputs(query, query_labels, reference, reference_labels, knn_k=knn_k, recall_ks=tuple(recall_ks),
                    distance=distance, seed=seed, progress=progress, options=options)
    values: dict[str, float] = {}
    for name in dict.fromkeys(metrics):
        if name in ("nmi", "ami") and "nmi" in values:
            continue
        values |= METRICS.get(name)(inputs)
    if "nmi" in values:  # one k-means gives both; keep only what was asked for
        values = {k: v for k, v in values.items() if k not in ("nmi", "ami") or k in metrics}
    return values
