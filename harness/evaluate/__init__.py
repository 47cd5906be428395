"""Embeddings -> metrics: pure functions on arrays, one faiss neighbour search shared by every metric of a call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from harness.errors import HarnessError
from harness.registry import Registry

DISTANCES = ("euclidean", "cosine")
# Metrics that classify test items by their neighbours in the training split; the others rank the test split
# against itself (retrieval), as in the Metric Learning Reality Check protocol.
TRAIN_REFERENCE_METRICS = frozenset({"knn_accuracy"})


@dataclass(frozen=True)
class Neighbours:
    """The k nearest references of every query, nearest first, self excluded when the sets are the same."""

    labels: np.ndarray  # (n_query, k) reference labels
    query_labels: np.ndarray  # (n_query,)
    relevant: np.ndarray  # (n_query,) number of references sharing the query's label (R of MAP@R)
    knn_k: int


Metric = Callable[[Neighbours], float]
METRICS: Registry[Metric] = Registry("metric")


def _check(name: str, x: np.ndarray, labels: np.ndarray) -> None:
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise HarnessError(f"{name}: expected a non-empty (n, d) array, got shape {x.shape}")
    if labels.shape != (x.shape[0],):
        raise HarnessError(f"{name}: {x.shape[0]} embeddings but labels of shape {labels.shape}")
    if not np.isfinite(x).all():
        raise HarnessError(f"{name}: embeddings contain NaN or infinite values")


def _search(query: np.ndarray, reference: np.ndarray, k: int, distance: str) -> np.ndarray:
    """Indices of the k nearest references per query (exact search)."""
    query = np.ascontiguousarray(query, dtype=np.float32)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    if distance == "cosine":
        query, reference = query.copy(), reference.copy()
        faiss.normalize_L2(query)
        faiss.normalize_L2(reference)
        index = faiss.IndexFlatIP(reference.shape[1])
    else:
        index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    _, found = index.search(query, k)
    return found


def neighbours(query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray | None = None,
               reference_labels: np.ndarray | None = None, *, k: int, knn_k: int = 1,
               distance: str = "euclidean") -> Neighbours:
    """Search once for the k nearest references; without a reference set the queries are their own, self excluded."""
    if distance not in DISTANCES:
        raise HarnessError(f"unknown distance '{distance}'; known: {', '.join(DISTANCES)}")
    query_labels = np.asarray(query_labels)
    _check("query", query, query_labels)
    same = reference is None
    if same:
        reference, reference_labels = query, query_labels
    reference_labels = np.asarray(reference_labels)
    _check("reference", reference, reference_labels)
    if reference.shape[1] != query.shape[1]:
        raise HarnessError(f"query has {query.shape[1]} dimensions but reference has {reference.shape[1]}")
    available = len(reference) - (1 if same else 0)
    k = max(1, min(k, available))
    found = _search(query, reference, k + (1 if same else 0), distance)
    if same:
        # Drop each query's own index; if exact duplicates pushed it out of the list, drop the last instead.
        is_self = found == np.arange(len(query))[:, None]
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), found.shape[1] - 1)
        keep = np.ones_like(found, dtype=bool)
        keep[np.arange(len(found)), drop] = False
        found = found[keep].reshape(len(found), k)
    classes, counts = np.unique(reference_labels, return_counts=True)
    per_class = dict(zip(classes.tolist(), counts.tolist()))
    relevant = np.array([per_class.get(label, 0) for label in query_labels.tolist()]) - (1 if same else 0)
    return Neighbours(reference_labels[found], query_labels, relevant, knn_k)


def knn_accuracy(nb: Neighbours) -> float:
    """Majority vote of the knn_k nearest; a tied vote goes to the smallest label (scikit-learn's rule)."""
    votes = nb.labels[:, : nb.knn_k]
    classes = np.unique(np.concatenate([votes.ravel(), nb.query_labels]))
    codes = np.searchsorted(classes, votes)
    counts = np.zeros((len(votes), len(classes)), dtype=np.int64)
    np.add.at(counts, (np.arange(len(votes))[:, None], codes), 1)
    predicted = classes[counts.argmax(axis=1)]
    return float((predicted == nb.query_labels).mean())


def precision_at_1(nb: Neighbours) -> float:
    return float((nb.labels[:, 0] == nb.query_labels).mean())


def _map_at_r_rows(nb: Neighbours) -> tuple[np.ndarray, np.ndarray]:
    """Per query with R >= 1: MAP@R and R-precision (Musgrave et al., A Metric Learning Reality Check, 2020)."""
    valid = nb.relevant > 0
    hits = nb.labels[valid] == nb.query_labels[valid, None]
    r = nb.relevant[valid]
    if r.max(initial=0) > hits.shape[1]:
        raise HarnessError(f"MAP@R needs {r.max()} neighbours per query but only {hits.shape[1]} were searched")
    ranks = np.arange(1, hits.shape[1] + 1)
    within_r = ranks[None, :] <= r[:, None]
    hits = hits & within_r
    precision = np.cumsum(hits, axis=1) / ranks
    map_r = (precision * hits).sum(axis=1) / r
    r_precision = hits.sum(axis=1) / r
    return map_r, r_precision


def map_at_r(nb: Neighbours) -> float:
    return float(_map_at_r_rows(nb)[0].mean())


def r_precision(nb: Neighbours) -> float:
    return float(_map_at_r_rows(nb)[1].mean())


METRICS.register_all({"knn_accuracy": knn_accuracy, "precision_at_1": precision_at_1, "map_at_r": map_at_r,
                      "r_precision": r_precision})
# How many neighbours each metric needs; None means "R", the largest class size.
_NEEDS: dict[str, Callable[[int], int | None]] = {
    "knn_accuracy": lambda knn_k: knn_k, "precision_at_1": lambda knn_k: 1,
    "map_at_r": lambda knn_k: None, "r_precision": lambda knn_k: None,
}


def evaluate(query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray | None = None,
             reference_labels: np.ndarray | None = None, *, metrics: Sequence[str], knn_k: int = 3,
             distance: str = "euclidean") -> dict[str, float]:
    """Every requested metric of `query` against `reference` (or against itself, self excluded)."""
    for name in metrics:
        METRICS.get(name)
    ref_labels = np.asarray(query_labels if reference_labels is None else reference_labels)
    largest_class = int(np.unique(ref_labels, return_counts=True)[1].max(initial=1))  # inputs checked below
    k = max((_NEEDS[m](knn_k) or largest_class) for m in metrics)
    nb = neighbours(query, query_labels, reference, reference_labels, k=k, knn_k=knn_k, distance=distance)
    return {name: METRICS.get(name)(nb) for name in metrics}
