"""Exact, chunked nearest-neighbour ranking: per query, everything precision@1, Recall@K, MAP@R, R-precision and kNN need.

One pass over the reference set serves all retrieval metrics. Queries are grouped by label and processed in chunks:
for a chunk, the distances to every reference are computed with one matrix product (torch: multi-threaded on the
CPU, or on the GPU when the embeddings are there), then reduced to a few numbers per query, so memory is bounded by
chunk x references whatever the set sizes. Per query we keep:

- the labels of its knn_k nearest references (kNN classification);
- the rank of its nearest relevant reference (precision@1 = rank 1, Recall@K = rank <= K);
- AP@R and R-precision (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020), computed from the
  R = |same-label references| closest references without sorting whole rows: the R-th smallest distance is found by
  selection, and only the R relevant distances and the R closest distances are sorted.

Why not faiss here: MAP@R needs the R nearest of every query, and with R ~ 6,000 (10 classes in 60,000
references) faiss's exact k-NN search took ~1.2 s per 1,000 queries on the 2-core development machine, already
slower than the whole pass below; selecting the R-th distance and sorting only R values per row is cheaper.
faiss still does the k-means of the clustering metrics.

Ties (equal distances, e.g. duplicated or collapsed embeddings): a reference of another class ranks before a
relevant one, and relevant ones keep their order among themselves. This is pessimistic on purpose, so a collapsed
embedding cannot score well; with continuous embeddings ties do not occur and the values equal
pytorch-metric-learning's AccuracyCalculator (tested to 1e-6).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

DISTANCES = ("euclidean", "cosine")
# Queries per chunk: chunk x n_reference float32 distances (~240 MB for 60,000 references) plus two copies.
DEFAULT_CHUNK = 512


@dataclass(frozen=True)
class Ranking:
    """Per-query results of one pass; every retrieval metric is a mean over some of these arrays."""

    query_labels: np.ndarray  # (n,)
    knn_labels: np.ndarray  # (n, knn_k) labels of the nearest references, nearest first
    relevant: np.ndarray  # (n,) R: references sharing the query's label (self excluded)
    first_relevant_rank: np.ndarray  # (n,) 1-based rank of the nearest relevant reference; 0 when R = 0
    ap_at_r: np.ndarray  # (n,) average precision within the first R; NaN when R = 0
    r_precision: np.ndarray  # (n,) relevant among the first R, over R; NaN when R = 0


def _distances(query: torch.Tensor, reference: torch.Tensor, ref_sq: torch.Tensor, distance: str,
               out: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance, or 1 - cosine similarity (inputs already normalised), clamped at 0, into `out`
    (one buffer reused for every chunk: a fresh 100+ MB allocation per chunk costs as much as the product)."""
    if distance == "cosine":
        torch.addmm(torch.ones((), device=query.device), query, reference.T, beta=1.0, alpha=-1.0, out=out)
    else:
        torch.addmm(ref_sq[None, :], query, reference.T, alpha=-2.0, out=out)
        out.add_((query * query).sum(1, keepdim=True))
    return out.clamp_(min=0.0)


def _ap_from_ranks(rel_sorted, rank, tau, r: int, xp):
    """AP@R and R-precision from the ranks of each row's R relevant references (xp: numpy or torch)."""
    position = xp.arange(1, r + 1)[None, :] if xp is np else torch.arange(1, r + 1, device=rank.device)[None, :]
    hits = (rel_sorted <= tau) & (rank <= r)
    precision = xp.where(hits, position / rank, 0.0)
    return precision.sum(1) / r, hits.sum(1) / r


def _rank_rows_numpy(values: np.ndarray, lo: int, hi: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows whose relevant references are the columns [lo, hi) (self already +inf): rank of the nearest
    relevant, AP@R and R-precision. numpy's partition and sort are several times faster than torch's on a CPU.

    Works in place on `values` (non-negative float32, destroyed): each distance becomes a uint32 key, its bits
    shifted left by one (a non-negative float32 needs only 31 bits, and its bits sort like the float) with the
    freed lowest bit set for relevant references. Equal distances then order other-class references first, and
    the relevance of the first R survives the selection without carrying indices.
    """
    keys = values.view(np.uint32)
    np.add(values, np.float32(0.0), out=values)  # turns -0.0 into +0.0 so every key has a clear sign bit
    np.left_shift(keys, 1, out=keys)
    keys[:, lo:hi] |= 1
    nearest_relevant = keys[:, lo:hi].min(axis=1, keepdims=True)
    keys.partition(r - 1, axis=1)
    top = np.sort(keys[:, :r], axis=1)
    hits = (top & 1).astype(bool)
    found = np.cumsum(hits, axis=1, dtype=np.int64)
    position = np.arange(1, r + 1)
    aps = np.where(hits, found / position, 0.0).sum(axis=1) / r
    rps = found[:, -1] / r
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    beyond = first == 0  # no relevant reference among the first R: count the whole row
    if beyond.any():
        first[beyond] = (keys[beyond] < nearest_relevant[beyond]).sum(axis=1) + 1
    return first, aps, rps


def _rank_rows_torch(dist: torch.Tensor, lo: int, hi: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_rank_rows_numpy in torch, for distances on a GPU (same tie rule; tested equal on CPU tensors)."""
    rel_sorted = torch.sort(dist[:, lo:hi], dim=1).values[:, :r].contiguous()
    top = torch.topk(dist, r, dim=1, largest=False, sorted=True).values.contiguous()
    tau = top[:, -1:]
    at_tau = (dist <= tau).sum(1, keepdim=True)
    all_le = torch.where(rel_sorted == tau, at_tau, torch.searchsorted(top, rel_sorted, side="right"))
    rel_le = torch.searchsorted(rel_sorted, rel_sorted, side="right")
    position = torch.arange(1, r + 1, device=dist.device)[None, :]
    rank = all_le - rel_le + position
    aps, rps = _ap_from_ranks(rel_sorted, rank.double(), tau, r, torch)
    nearest = rel_sorted[:, :1]
    first = (dist <= nearest).sum(1) - (rel_sorted <= nearest).sum(1) + 1
    return first.cpu().numpy(), aps.double().cpu().numpy(), rps.double().cpu().numpy()


def _rank_rows(dist: torch.Tensor, lo: int, hi: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = dist.shape[0]
    if r == 0:
        return np.zeros(n, dtype=np.int64), np.full(n, np.nan), np.full(n, np.nan)
    if dist.device.type == "cpu" and not FORCE_TORCH:
        return _rank_rows_numpy(dist.numpy(), lo, hi, r)
    return _rank_rows_torch(dist, lo, hi, r)


# Tests set this to check the GPU code path against the CPU one on CPU tensors.
FORCE_TORCH = False


def rank(query: np.ndarray | torch.Tensor, query_labels: np.ndarray, reference: np.ndarray | torch.Tensor | None,
         reference_labels: np.ndarray | None, *, knn_k: int = 1, distance: str = "euclidean",
         chunk: int = DEFAULT_CHUNK, progress: bool = False) -> Ranking:
    """Rank every reference for every query (exact). Without a reference set, queries rank each other, self excluded.

    Inputs are validated by the caller (harness.evaluate). Embeddings given as CUDA tensors are ranked on their GPU.
    """
    same = reference is None
    q = torch.as_tensor(query).float()
    ref = q if same else torch.as_tensor(reference).float().to(q.device)
    query_labels = np.asarray(query_labels)
    ref_labels = query_labels if same else np.asarray(reference_labels)
    if distance == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        ref = q if same else torch.nn.functional.normalize(ref, dim=1)
    on_gpu = q.device.type != "cpu"

    # References sorted by label: the relevant ones of any query are one contiguous block of columns.
    ref_order = np.argsort(ref_labels, kind="stable")
    ref_sorted = ref[torch.as_tensor(ref_order, device=q.device)].contiguous()
    sorted_labels = ref_labels[ref_order]
    classes, starts, counts = np.unique(sorted_labels, return_index=True, return_counts=True)
    block = {c: (int(s), int(s + n)) for c, s, n in zip(classes.tolist(), starts, counts)}
    position_of = np.empty(len(ref_order), dtype=np.int64)
    position_of[ref_order] = np.arange(len(ref_order))
    ref_sq = (ref_sorted * ref_sorted).sum(1)

    n = len(query_labels)
    knn_k = min(knn_k, len(ref_labels) - (1 if same else 0))
    knn_labels = np.empty((n, knn_k), dtype=ref_labels.dtype)
    relevant = np.zeros(n, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    aps = np.full(n, np.nan)
    rps = np.full(n, np.nan)
    workers = 1 if on_gpu else max(1, min(torch.get_num_threads(), os.cpu_count() or 1))

    jobs = []
    query_order = np.argsort(query_labels, kind="stable")
    for label in np.unique(query_labels).tolist():
        members = query_order[query_labels[query_order] == label]
        for start in range(0, len(members), chunk):
            jobs.append((label, members[start:start + chunk]))
    buffer = torch.empty((min(chunk, n), len(ref_labels)), device=q.device)
    bar = tqdm(total=n, disable=not progress, unit="query", desc="ranking", mininterval=1.0)
    with ThreadPoolExecutor(workers) as pool, bar:
        for label, rows in jobs:
            lo, hi = block.get(label, (0, 0))
            dist = _distances(q[torch.as_tensor(rows, device=q.device)], ref_sorted, ref_sq, distance,
                              buffer[: len(rows)])
            if same:
                dist[torch.arange(len(rows), device=q.device), torch.as_tensor(position_of[rows], device=q.device)] \
                    = float("inf")
            r = (hi - lo) - (1 if same and hi > lo else 0)
            nearest = torch.topk(dist, knn_k, dim=1, largest=False, sorted=True).indices.cpu().numpy()
            knn_labels[rows] = sorted_labels[nearest]
            relevant[rows] = r
            # numpy's partition and sort hold one core each: split the rows between the cores.
            pieces = torch.tensor_split(dist, workers) if workers > 1 else (dist,)
            parts = list(pool.map(lambda piece: _rank_rows(piece, lo, hi, r), pieces))
            first[rows] = np.concatenate([p[0] for p in parts])
            aps[rows] = np.concatenate([p[1] for p in parts])
            rps[rows] = np.concatenate([p[2] for p in parts])
            bar.update(len(rows))
    return Ranking(query_labels, knn_labels, relevant, first, aps, rps)
