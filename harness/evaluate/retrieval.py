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

Numerics. The matrix product gives squared distances as |q|^2 + |r|^2 - 2 q.r, which cancels: float32 keeps about
2^-24 (|q|^2 + |r|^2) of absolute precision, so a common offset (embeddings + 1e4) or a large magnitude turns
every distance into noise, and the tie rule above then ranks that noise pessimistically. So before any product
every embedding goes through one map that changes no ranking (_Geometry): cosine takes unit rows (for unit
vectors |a - b|^2 = 2 - 2 cos, the same order as 1 - cos), then the reference mean is subtracted and a power of two
brings the largest coordinate into [0.5, 1) (exact, so neither x * 1e20 overflows nor x * 1e-30 underflows).
What cancellation remains is bounded per row: a row keeps its float32 distances while none of them loses more
than CANCELLATION_BITS bits, otherwise (near-duplicates, a tight cluster far from the mean) the row is
recomputed in float64, and the float64 entries that still cancel are summed from coordinate differences.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.provenance import usable_cpus

# Queries per chunk: chunk x n_reference float32 distances (~240 MB for 60,000 references) plus two copies.
DEFAULT_CHUNK = 512
# A row keeps its float32 distances while cancellation costs each of them at most this many of float32's 24 bits
# (relative error ~2^(8 - 24) sqrt(d), 2e-4 at 128-d); nearer than that to its nearest reference, a row is
# recomputed in float64. Far above what ordinary embeddings need once centred (the benchmark's rows lose ~2 bits).
CANCELLATION_BITS = 8
# The same bound in float64; an entry beyond it is summed from coordinate differences, which do not cancel.
CANCELLATION_BITS_64 = 16
# Centres are rounded to this many bits below the spread of the points around them: subtracting one is then exact
# for embeddings on a grid (integer or coarsely quantised coordinates), whose equal distances must stay ties.
CENTRE_BITS = 12
# Rows of at least PREFILTER_COLUMNS references are ranked from the keys under a bound drawn from one in
# SAMPLE_STEP columns (see _smallest).
PREFILTER_COLUMNS = 4096
SAMPLE_STEP = 16
# Rows recomputed in float64 at a time (64 x 60,000 references: 31 MB), and entries summed from differences at a time.
EXACT_ROWS = 64
DIRECT_PAIRS = 1 << 14


@dataclass(frozen=True)
class Ranking:
    """Per-query results of one pass; every retrieval metric is a mean over some of these arrays."""

    query_labels: np.ndarray  # (n,)
    knn_labels: np.ndarray  # (n, knn_k) labels of the nearest references, nearest first
    relevant: np.ndarray  # (n,) R: references sharing the query's label (self excluded)
    first_relevant_rank: np.ndarray  # (n,) 1-based rank of the nearest relevant reference; 0 when R = 0
    ap_at_r: np.ndarray  # (n,) average precision within the first R; NaN when R = 0
    r_precision: np.ndarray  # (n,) relevant among the first R, over R; NaN when R = 0


def _exponent(value: float) -> int:
    """e with value * 2**-e in [0.5, 1), 0 for 0: scaling by 2**-e is exact and changes no ratio."""
    return math.frexp(value)[1]


def _times_pow2(x: torch.Tensor, e: int) -> torch.Tensor:
    """x * 2**e, exact unless it underflows; in two factors where one power of two would overflow x's dtype."""
    if e == 0:
        return x
    if abs(e) < (1000 if x.dtype == torch.float64 else 120):
        return x * 2.0 ** e
    half = e // 2
    return x * 2.0 ** half * 2.0 ** (e - half)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """x / |x| per row, all-zero rows left zero. Each row is first scaled into [0.5, 1) by a power of two: the norm
    of a 1e-30 row underflows to 0 otherwise (and a plain normalize then leaves it far from unit length)."""
    top = x.abs().amax(dim=1, keepdim=True)
    e = torch.frexp(top).exponent.to(x.dtype)
    half = torch.floor(e / 2)
    x = x * torch.pow(2.0, -half) * torch.pow(2.0, half - e)
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / torch.where(norm > 0, norm, torch.ones_like(norm))


def _grid_centre(mean: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """`mean` (float64) rounded to CENTRE_BITS bits below the spread of points in [lo, hi] around it."""
    spread = float(torch.maximum(hi - mean, mean - lo).max())
    if spread == 0:  # one point: the mean is that point, and subtracting it gives exact zeros
        return mean
    grid = math.ldexp(1.0, _exponent(spread) - CENTRE_BITS)
    return torch.round(mean / grid) * grid


def _units(x: torch.Tensor, cosine: bool) -> torch.Tensor:
    """The embeddings in the working precision (float32, float64 where given so), or their unit rows in float64:
    for embeddings in a narrow cone (a common offset) the unit rows differ by far less than float32 resolves."""
    if cosine:
        return _unit_rows(x.double())
    return x if x.dtype == torch.float64 else x.float()


@dataclass(frozen=True)
class _Geometry:
    """The map every embedding goes through before its distances: unit rows for cosine, then
    x * 2**-exponent - centre. It changes no ranking (a translation and an exact scale; for unit vectors
    |a - b|^2 = 2 - 2 cos), and after it the coordinates lie in [-1, 1] around the reference mean, where the product
    form cancels least and squares neither overflow nor underflow. Mapped squared distances are original squared
    distances times 4**-exponent (cosine: 2 - 2 cos times 4**-exponent)."""

    cosine: bool
    exponent: int
    centre: torch.Tensor  # float64, in mapped units

    @classmethod
    def fit(cls, points: list[torch.Tensor], reference: torch.Tensor, cosine: bool) -> _Geometry:
        """From every set that will be mapped (as `_units` returns them) and the reference set among them."""
        lo = torch.stack([p.amin(0) for p in points]).amin(0).double()
        hi = torch.stack([p.amax(0) for p in points]).amax(0).double()
        pre = _exponent(float(torch.maximum(-lo, hi).max()))
        if reference.dtype == torch.float64:  # scaled first: a float64 sum of 1e308s overflows
            mean = _times_pow2(reference, -pre).mean(0)
        elif reference.device.type == "cpu":  # numpy accumulates float32 in float64 ~10x faster than torch
            mean = _times_pow2(torch.from_numpy(reference.detach().numpy().mean(0, dtype=np.float64)), -pre)
        else:
            mean = _times_pow2(reference.mean(0, dtype=torch.float64), -pre)
        lo, hi = _times_pow2(lo, -pre), _times_pow2(hi, -pre)
        centre = _grid_centre(mean, lo, hi)
        post = _exponent(float(torch.maximum(hi - centre, centre - lo).max()))
        return cls(cosine, pre + post, _times_pow2(centre, -post))

    def fast(self, units: torch.Tensor) -> torch.Tensor:
        """Mapped float32 rows, for the matrix product (one rounding per coordinate, after the exact scale)."""
        if units.dtype == torch.float64:
            return (_times_pow2(units, -self.exponent) - self.centre).float()
        if abs(self.exponent) < 126:
            return torch.addcmul(-self.centre.float(), units, torch.tensor(2.0 ** -self.exponent, device=units.device))
        return _times_pow2(units, -self.exponent) - self.centre.float()

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """Mapped float64 rows from the original embeddings (unit rows recomputed in float64)."""
        x = x.double()
        return _times_pow2(_unit_rows(x) if self.cosine else x, -self.exponent) - self.centre

    @property
    def zero_distance(self) -> float:
        """The mapped distance of a cosine distance of 1: that of an all-zero embedding to anything (cos = 0, as
        torch's normalize has it)."""
        return math.ldexp(2.0, -2 * self.exponent)


def _distances(query: torch.Tensor, q_sq: torch.Tensor, reference: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances of mapped rows into `out` (one buffer reused for every chunk: a fresh 100+ MB
    allocation per chunk costs as much as the product). Rows come as [q, 1] and [-2 r, |r|^2], so that
    |q|^2 + |r|^2 - 2 q.r is one product and no pass over the chunk adds a term (10% of the time). Not clamped at
    0: a negative value is cancellation, and makes its row's minimum negative, which sends the row to float64."""
    return torch.addmm(q_sq[:, None], query, reference.T, out=out)


def _exact_distances(query: torch.Tensor, reference: torch.Tensor, ref_sq: torch.Tensor) -> torch.Tensor:
    """float64 squared distances of mapped rows moved to an origin near the queries: the product form, and where
    that still loses more than CANCELLATION_BITS_64 bits (near-duplicates), sums of squared coordinate differences."""
    q_sq = (query * query).sum(1)
    dist = torch.addmm(ref_sq[None, :], query, reference.T, alpha=-2.0).add_(q_sq[:, None]).clamp_(min=0.0)
    rows, cols = torch.nonzero(dist * 2.0 ** CANCELLATION_BITS_64 < q_sq[:, None] + ref_sq[None, :], as_tuple=True)
    for start in range(0, len(rows), DIRECT_PAIRS):
        i, j = rows[start:start + DIRECT_PAIRS], cols[start:start + DIRECT_PAIRS]
        diff = reference[j] - query[i]
        dist[i, j] = (diff * diff).sum(1)
    return dist


def _ap_from_ranks(rel_sorted, rank, tau, r: int, xp):
    """AP@R and R-precision from the ranks of each row's R relevant references (xp: numpy or torch)."""
    position = xp.arange(1, r + 1)[None, :] if xp is np else torch.arange(1, r + 1, device=rank.device)[None, :]
    hits = (rel_sorted <= tau) & (rank <= r)
    precision = xp.where(hits, position / rank, 0.0)
    return precision.sum(1) / r, hits.sum(1) / r


def _smallest(keys: np.ndarray, r: int) -> np.ndarray:
    """The r smallest keys of every row, in no order (exact); `keys` may be reordered within rows.

    Partitioning a whole row costs ~70% of the ranking. One in SAMPLE_STEP columns (classes are contiguous blocks
    of columns, so the sample takes each class in proportion) gives a bound that about r keys, plus four standard
    deviations of the sample's count, fall under; only those are copied out and partitioned. A row with fewer than
    r keys under its bound (an order of references the sample misjudges) is partitioned whole.
    """
    sample = keys[:, ::SAMPLE_STEP]
    expect = r * sample.shape[1] / keys.shape[1]
    kth = int(expect + 4 * math.sqrt(expect) + 8)
    if keys.shape[1] < PREFILTER_COLUMNS or 2 * kth > sample.shape[1]:
        keys.partition(r - 1, axis=1)
        return keys[:, :r]
    bounds = np.partition(sample, kth, axis=1)[:, kth]
    top = np.empty((len(keys), r), dtype=keys.dtype)
    for i, (row, bound) in enumerate(zip(keys, bounds)):
        below = np.compress(row <= bound, row)
        below = below if len(below) >= r else row
        below.partition(r - 1)
        top[i] = below[:r]
    return top


def _rank_rows_numpy(values: np.ndarray, lo: int, hi: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows whose relevant references are the columns [lo, hi) (self already +inf): rank of the nearest
    relevant, AP@R and R-precision. numpy's partition and sort are several times faster than torch's on a CPU.

    Works in place on `values` (non-negative float32 or float64, destroyed): each distance becomes an unsigned key
    of its width, its bits shifted left by one (a non-negative float needs one bit less than its width, and its
    bits sort like the float) with the freed lowest bit set for relevant references. Equal distances then order
    other-class references first, and the relevance of the first R survives the selection without carrying indices.
    The shift also drops the sign bit, so a -0.0 keys like +0.0.
    """
    keys = values.view(np.uint64 if values.dtype == np.float64 else np.uint32)
    np.left_shift(keys, 1, out=keys)
    keys[:, lo:hi] |= 1
    nearest_relevant = keys[:, lo:hi].min(axis=1, keepdims=True)
    top = np.sort(_smallest(keys, r), axis=1)
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


def _rank_block(dist: torch.Tensor, lo: int, hi: int, r: int, pool: ThreadPoolExecutor,
                workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # numpy's partition and sort hold one core each: split the rows between the cores.
    pieces = torch.tensor_split(dist, workers) if workers > 1 else (dist,)
    parts = list(pool.map(lambda piece: _rank_rows(piece, lo, hi, r), pieces))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def rank(query: np.ndarray | torch.Tensor, query_labels: np.ndarray, reference: np.ndarray | torch.Tensor | None,
         reference_labels: np.ndarray | None, *, knn_k: int = 1, distance: str = "euclidean",
         chunk: int = DEFAULT_CHUNK, progress: bool = False) -> Ranking:
    """Rank every reference for every query (exact). Without a reference set, queries rank each other, self excluded.

    Inputs are validated by the caller (harness.evaluate). Embeddings given as CUDA tensors are ranked on their GPU.
    """
    same = reference is None
    q_in = torch.as_tensor(query)
    ref_in = q_in if same else torch.as_tensor(reference).to(q_in.device)
    device = q_in.device
    query_labels = np.asarray(query_labels)
    ref_labels = query_labels if same else np.asarray(reference_labels)
    on_gpu = device.type != "cpu"

    cosine = distance == "cosine"
    q_units = _units(q_in, cosine)
    ref_units = q_units if same else _units(ref_in, cosine)
    geometry = _Geometry.fit([q_units] if same else [q_units, ref_units], ref_units, cosine)
    q = geometry.fast(q_units)
    ref = q if same else geometry.fast(ref_units)
    del q_units, ref_units
    q_sq = (q * q).sum(1)

    # References sorted by label: the relevant ones of any query are one contiguous block of columns.
    ref_order = np.argsort(ref_labels, kind="stable")
    order = torch.as_tensor(ref_order, device=device)
    ref = ref[order]
    ref = torch.cat([ref * -2.0, (ref * ref).sum(1, keepdim=True)], dim=1)  # see _distances
    q = torch.cat([q, torch.ones((len(q), 1), device=device)], dim=1)
    sorted_labels = ref_labels[ref_order]
    classes, starts, counts = np.unique(sorted_labels, return_index=True, return_counts=True)
    block = {c: (int(s), int(s + n)) for c, s, n in zip(classes.tolist(), starts, counts)}
    position_of = np.empty(len(ref_order), dtype=np.int64)
    position_of[ref_order] = np.arange(len(ref_order))
    # Cosine distance of an all-zero embedding: 1 to everything, as torch's normalize had it (its unit row is 0).
    zero_q = zero_ref = None
    if cosine:
        zero_q, zero_ref = ~q_in.any(1), ~ref_in.any(1)[order]
        zero_q, zero_ref = (zero_q if zero_q.any() else None), (zero_ref if zero_ref.any() else None)

    n = len(query_labels)
    knn_k = min(knn_k, len(ref_labels) - (1 if same else 0))
    knn_labels = np.empty((n, knn_k), dtype=ref_labels.dtype)
    relevant = np.zeros(n, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    aps = np.full(n, np.nan)
    rps = np.full(n, np.nan)
    workers = 1 if on_gpu else max(1, min(torch.get_num_threads(), usable_cpus()))

    def settle(dist: torch.Tensor, rows: np.ndarray, rows_t: torch.Tensor) -> None:
        if zero_ref is not None:
            dist[:, zero_ref] = geometry.zero_distance
        if zero_q is not None:
            dist[zero_q[rows_t]] = geometry.zero_distance
        if same:
            dist[torch.arange(len(rows), device=device), torch.as_tensor(position_of[rows], device=device)] \
                = float("inf")

    # Rows recomputed in float64 need the references in float64, moved to the mean of the rows' class: a tight
    # cluster far from the global mean is then well-conditioned too. Computed once, and once per label.
    exact: dict = {}

    def exact_distances(rows: np.ndarray, rows_t: torch.Tensor, label) -> torch.Tensor:
        if "all" not in exact:
            exact["all"] = geometry.exact(ref_in)[order]
        if "moved" not in exact or exact["label"] != label:
            points = q[torch.as_tensor(members[label], device=device), :-1].double()
            centre = _grid_centre(points.mean(0), points.amin(0), points.amax(0))
            exact.pop("moved", None)
            moved = exact["all"] - centre
            exact.update(label=label, centre=centre, moved=moved, moved_sq=(moved * moved).sum(1))
        dist = _exact_distances(geometry.exact(q_in[rows_t]) - exact["centre"], exact["moved"], exact["moved_sq"])
        settle(dist, rows, rows_t)
        return dist

    jobs, members = [], {}
    query_order = np.argsort(query_labels, kind="stable")
    for label in np.unique(query_labels).tolist():
        members[label] = query_order[query_labels[query_order] == label]
        for start in range(0, len(members[label]), chunk):
            jobs.append((label, members[label][start:start + chunk]))
    buffer = torch.empty((min(chunk, n), len(ref_labels)), device=device)
    bar = tqdm(total=n, disable=not progress, unit="query", desc="ranking", mininterval=1.0)
    with ThreadPoolExecutor(workers) as pool, bar:
        for label, rows in jobs:
            lo, hi = block.get(label, (0, 0))
            r = (hi - lo) - (1 if same and hi > lo else 0)
            rows_t = torch.as_tensor(rows, device=device)
            dist = _distances(q[rows_t], q_sq[rows_t], ref, buffer[: len(rows)])
            settle(dist, rows, rows_t)
            nearest_d, nearest = torch.topk(dist, knn_k, dim=1, largest=False, sorted=True)
            # Every distance d of a row has |q|^2 + |r|^2 <= 5 max(|q|^2 / d_min, 1) d (for |r| >= 2|q|, d >= |r|^2 / 4;
            # below, |q|^2 + |r|^2 < 5 |q|^2): the product form loses at most log2 of that many bits on it. A
            # negative d_min (pure cancellation) always counts as too many; the ranking of kept rows relies on it.
            is_loose = (5 * q_sq[rows_t] > 2.0 ** CANCELLATION_BITS * nearest_d[:, 0]).cpu().numpy()
            loose, kept = rows[is_loose], rows[~is_loose]
            knn_labels[rows] = sorted_labels[nearest.cpu().numpy()]
            relevant[rows] = r
            if len(kept):
                kept_dist = dist if not len(loose) else dist[torch.as_tensor(~is_loose, device=device)]
                first[kept], aps[kept], rps[kept] = _rank_block(kept_dist, lo, hi, r, pool, workers)
            for start in range(0, len(loose), EXACT_ROWS):
                part = loose[start:start + EXACT_ROWS]
                part_t = torch.as_tensor(part, device=device)
                dist = exact_distances(part, part_t, label)
                knn_labels[part] = sorted_labels[torch.topk(dist, knn_k, dim=1, largest=False).indices.cpu().numpy()]
                first[part], aps[part], rps[part] = _rank_block(dist, lo, hi, r, pool, workers)
            bar.update(len(rows))
    return Ranking(query_labels, knn_labels, relevant, first, aps, rps)
