"""Clustering quality: NMI and AMI of faiss k-means clusters of the embeddings against the class labels."""

from __future__ import annotations

import faiss
import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from harness.errors import HarnessError
from harness.evaluate.pairs import as_float64, centred, check_distance, unit_rows


def mutual_information(cluster_ids: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NMI and AMI (arithmetic normalisation, scikit-learn's default) of given cluster assignments."""
    clusters, labels = np.asarray(cluster_ids), np.asarray(labels)
    if clusters.ndim != 1 or clusters.size == 0 or clusters.shape != labels.shape:
        raise HarnessError(f"mutual_information: expected two non-empty 1-D arrays of one length, "
                           f"got {clusters.shape} and {labels.shape}")
    # With a single class every partition scores the same, so the number says nothing about the embeddings.
    if len(np.unique(labels)) < 2:
        raise HarnessError("mutual_information: needs at least 2 classes, got 1")
    return {"nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ami": float(adjusted_mutual_info_score(labels, clusters))}


def kmeans_assign(x: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Index of the nearest of k faiss k-means centroids (100 iterations, seeded) for every row of x."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    # faiss takes a 32-bit seed; a run's seed may be up to 2**63 - 1 (seeds below 2**31 are passed as they are).
    kmeans = faiss.Kmeans(x.shape[1], k, niter=100, seed=seed % 2**31, verbose=False)
    kmeans.train(x)
    _, found = kmeans.index.search(x, 1)
    return found[:, 0]


def nmi_ami(x: np.ndarray, labels: np.ndarray, *, seed: int = 0, distance: str = "euclidean",
            n_clusters: int | None = None) -> dict[str, float]:
    """NMI and AMI of k-means clusters (k = number of classes unless n_clusters); cosine clusters unit vectors.

    One seeded k-means start, as in pytorch-metric-learning: it can settle in a local optimum (two classes
    in one cluster) even on well-separated data, so the score moves with the seed.
    """
    x, labels = as_float64("nmi_ami", x, labels)
    check_distance(x, distance, "nmi_ami")
    n_classes = len(np.unique(labels))
    if n_classes < 2:
        raise HarnessError("nmi_ami: needs at least 2 classes, got 1")
    k = n_classes if n_clusters is None else n_clusters
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(x):
        raise HarnessError(f"nmi_ami: n_clusters must be an integer between 1 and {len(x)} (the items), got {k!r}")
    if distance == "cosine":
        x = unit_rows(x)
    # faiss works in float32 and assigns points by |x|^2 + |c|^2 - 2 x.c: a common offset (x + 1e4) turns that into
    # noise, x * 1e20 overflows it (faiss then aborts the process) and x * 1e-30 underflows it. k-means moves with a
    # shift and a scale of its points, so centring and a power of two, in float64 before the cast, change no
    # partition and leave faiss well-conditioned numbers.
    x, _ = centred(x)
    return mutual_information(kmeans_assign(x, int(k), seed=seed), labels)
