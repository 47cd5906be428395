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
- classification_accuracy (HEAD_METRICS): argmax of a classifier head's logits (harness.evaluate.runs routes it).
Which items each metric scores in a training run (test, validation, unseen classes): harness.evaluate.runs.
Distances: "euclidean" or "cosine" for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.catalog import DEFAULT_RECALL_KS, DISTANCES, METRICS
from harness.errors import HarnessError
from harness.evaluate.checks import check_embeddings

if TYPE_CHECKING:  # torch is imported where it is used: `harness --help` reads this package's command, not torch
    import torch


def _as_array(name: str, x: Any) -> np.ndarray | torch.Tensor:
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise HarnessError(f"{name}: expected a numeric (n, d) array") from None


def classification_accuracy(logits: Any, labels: Any) -> float:
    """Fraction of items whose largest logit is their label (a tie goes to the smaller class index)."""
    import torch

    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels, device=logits.device)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise HarnessError(f"classification_accuracy: {tuple(logits.shape)} logits for {len(labels)} labels")
    return float((logits.argmax(dim=1) == labels).float().mean())


def evaluate(query: Any, query_labels: Any, reference: Any = None, reference_labels: Any = None, *,
             metrics: Sequence[str], knn_k: int = 3, recall_ks: Sequence[int] = DEFAULT_RECALL_KS,
             distance: str = "euclidean", seed: int = 0, progress: bool = False,
             **options: Any) -> dict[str, float]:
    """Every requested metric of `query` against `reference` (or against itself, self excluded), as floats.

    Embeddings may be numpy arrays or torch tensors (CUDA tensors are ranked on their GPU). Bad input raises
    HarnessError with one line: NaN/inf, mismatched lengths, wrong dimensions, empty arrays, a single class.
    """
    import torch

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
    from harness.evaluate.metrics import Inputs

    inputs = Inputs(query, query_labels, reference, reference_labels, knn_k=knn_k, recall_ks=tuple(recall_ks),
                    distance=distance, seed=seed, progress=progress, options=options)
    values: dict[str, float] = {}
    called = []
    for name in dict.fromkeys(metrics):
        function = METRICS.get(name)
        if function in called:  # one function may give several metrics (one k-means gives nmi and ami)
            continue
        called.append(function)
        values |= function(inputs)
    # An output named after another metric (ami beside nmi) is kept only where that metric was asked for.
    return {k: v for k, v in values.items() if k not in METRICS or k in metrics}
