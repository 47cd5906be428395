"""evaluate on embeddings with a large offset, a huge or tiny scale, or near-duplicates: every metric equals a float64
oracle (or its value on the unshifted, unscaled embeddings), or the call refuses in one line.

The float32 product form |q|^2 + |r|^2 - 2 q.r used to cancel on such inputs (precision@1 0.00 instead of 1.00 for
embeddings + 1e4), and faiss's k-means aborted the process on embeddings * 1e20.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from sklearn.neighbors import KNeighborsClassifier

from harness import evaluate
from harness.errors import HarnessError
from harness.evaluate import clustering, pairs, retrieval
from tests.conftest import clustered

RECALL_KS = (1, 2, 4, 8, 16, 32)
RETRIEVAL = ["precision_at_1", "recall_at_k", "map_at_r", "r_precision", "knn_accuracy"]
KNN_K = 3


def unit(x: np.ndarray) -> np.ndarray:
    """Unit rows in float64; each row first scaled by a power of two, so that 1e-40 rows do not underflow."""
    x = np.ldexp(x, -np.frexp(np.abs(x).max(axis=1, keepdims=True))[1])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def oracle(query, query_labels, reference=None, reference_labels=None, *, distance: str) -> dict[str, float]:
    """The metric definitions as float64 loops over fully sorted rows of distances summed from coordinate
    differences (nothing cancels). Cosine ranks as |a/|a| - b/|b||^2 = 2 - 2 cos. Ties: other-class first."""
    same = reference is None
    q = np.asarray(query, dtype=np.float64)
    ref = q if same else np.asarray(reference, dtype=np.float64)
    ref_labels = np.asarray(query_labels if same else reference_labels)
    if distance == "cosine":
        q, ref = unit(q), unit(ref)
    firsts, aps, rps, knn_right = [], [], [], []
    for i, (row, label) in enumerate(zip(q, query_labels)):
        d = ((ref - row) ** 2).sum(1)
        keep = np.arange(len(ref)) != i if same else np.ones(len(ref), dtype=bool)
        d, labels = d[keep], ref_labels[keep]
        relevant = labels == label
        by_distance = np.sort(d)
        # The vote needs an unambiguous k nearest; the data below are chosen so that the k-th never ties.
        assert by_distance[KNN_K - 1] < by_distance[KNN_K], f"query {i}: the {KNN_K}-th neighbour is tied"
        votes, counts = np.unique(labels[np.argsort(d, kind="stable")[:KNN_K]], return_counts=True)
        knn_right.append(votes[np.argmax(counts)] == label)  # np.unique sorts: a tied vote goes to the smallest label
        r = int(relevant.sum())
        if r == 0:
            continue
        hits = relevant[np.lexsort((relevant, d))]
        firsts.append(int(np.argmax(hits)) + 1)
        found = np.cumsum(hits[:r])
        aps.append(float((found / np.arange(1, r + 1))[hits[:r]].sum() / r))
        rps.append(found[-1] / r)
    firsts = np.array(firsts)
    return {"precision_at_1": float((firsts == 1).mean()),
            **{f"recall_at_{k}": float((firsts <= k).mean()) for k in RECALL_KS},
            "map_at_r": float(np.mean(aps)), "r_precision": float(np.mean(rps)),
            "knn_accuracy": float(np.mean(knn_right))}


def ours(query, query_labels, reference=None, reference_labels=None, *, distance: str) -> dict[str, float]:
    return evaluate.evaluate(query, query_labels, reference, reference_labels, metrics=RETRIEVAL, knn_k=KNN_K,
                             recall_ks=RECALL_KS, distance=distance)


def near_duplicates(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered points, each with two copies moved by 1e-6 of their coordinates and given random labels: the
    order within a group decides precision@1, and float32's product form sees the three as one point."""
    base, labels = clustered(150, 5, 16, seed)
    rng = np.random.default_rng(seed + 1)
    copies = [base * (1 + 1e-6 * rng.standard_normal(base.shape)) for _ in range(2)]
    x = np.concatenate([base, *copies]).astype(np.float32)
    return x, np.concatenate([labels, rng.integers(0, 5, 2 * len(base))])


def transformed(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 embeddings as evaluate receives them (the oracle gets the same values)."""
    if kind == "near-duplicates":
        return near_duplicates(7)
    x, y = clustered(450, 5, 16, 3)
    transforms = {"plain": x, "+1e4": x + np.float32(1e4), "-1e4": x - np.float32(1e4), "+1e6": x + np.float32(1e6),
                  "*1e20": x * np.float32(1e20), "*1e-20": x * np.float32(1e-20), "*1e-30": x * np.float32(1e-30),
                  "*1e-40 (subnormal)": x * np.float32(1e-40)}
    return transforms[kind].astype(np.float32), y


KINDS = ["plain", "+1e4", "-1e4", "+1e6", "*1e20", "*1e-20", "*1e-30", "*1e-40 (subnormal)", "near-duplicates"]


@pytest.mark.parametrize("separate", [False, True], ids=["against itself", "separate reference"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("kind", KINDS)
def test_retrieval_metrics_equal_a_float64_oracle(kind, distance, separate):
    x, y = transformed(kind)
    args = (x[:150], y[:150], x[150:], y[150:]) if separate else (x, y)
    expected = oracle(*args, distance=distance)
    got = ours(*args, distance=distance)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name


def test_the_oracle_equals_pml_and_sklearn_on_plain_embeddings():
    x, y = transformed("plain")
    expected = oracle(x, y, distance="euclidean")
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                              k="max_bin_count", device=torch.device("cpu"))
    pml = calc.get_accuracy(torch.tensor(x, dtype=torch.float64), torch.tensor(y))
    assert expected["precision_at_1"] == pytest.approx(pml["precision_at_1"], abs=1e-9)
    assert expected["map_at_r"] == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-9)
    assert expected["r_precision"] == pytest.approx(pml["r_precision"], abs=1e-9)
    separate = oracle(x[:150], y[:150], x[150:], y[150:], distance="euclidean")
    knn = KNeighborsClassifier(n_neighbors=KNN_K).fit(x[150:].astype(np.float64), y[150:])
    assert separate["knn_accuracy"] == knn.score(x[:150].astype(np.float64), y[:150])


def product_form_precision_at_1(x: np.ndarray, y: np.ndarray) -> float:
    """precision@1 from float32 |q|^2 + |r|^2 - 2 q.r on the raw embeddings, other-class first on ties."""
    q = torch.tensor(x)
    sq = (q * q).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * q @ q.T).clamp(min=0).numpy().astype(np.float64)
    np.fill_diagonal(d, np.inf)
    relevant = y[None, :] == y[:, None]
    nearest = np.lexsort((relevant, d), axis=1)[:, 0]
    return float(relevant[np.arange(len(y)), nearest].mean())


def test_the_plain_product_form_is_wrong_on_these_inputs():
    # Guards the tests above against inputs too easy to tell anything: what the ranking computed before (float32
    # |q|^2 + |r|^2 - 2 q.r on the raw embeddings) misses the oracle on each of them.
    for kind in ["+1e4", "-1e4", "+1e6", "*1e20", "*1e-30", "near-duplicates"]:
        x, y = transformed(kind)
        assert abs(product_form_precision_at_1(x, y) - oracle(x, y, distance="euclidean")["precision_at_1"]) > 0.05


def test_only_rows_float32_cannot_resolve_are_recomputed_in_float64(monkeypatch):
    calls = []
    exact = retrieval._exact_distances
    monkeypatch.setattr(retrieval, "_exact_distances", lambda *a: calls.append(len(a[0])) or exact(*a))
    for kind in ["plain", "+1e4", "*1e20", "*1e-30"]:  # centred and scaled, float32 resolves these
        ours(*transformed(kind), distance="euclidean")
    assert calls == []
    x, y = near_duplicates(7)
    ours(x, y, distance="euclidean")
    assert sum(calls) == len(x)  # every item has a copy 1e-6 away


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_rows_recomputed_in_float64_agree_across_code_paths_and_chunks(monkeypatch, distance):
    x, y = near_duplicates(11)
    a = retrieval.rank(x, y, None, None, knn_k=KNN_K, distance=distance, chunk=37)
    b = retrieval.rank(x, y, None, None, knn_k=KNN_K, distance=distance, chunk=4096)
    monkeypatch.setattr(retrieval, "FORCE_TORCH", True)
    c = retrieval.rank(x, y, None, None, knn_k=KNN_K, distance=distance, chunk=64)
    for field in ("knn_labels", "relevant", "first_relevant_rank"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(getattr(a, field), getattr(c, field))
    for field in ("ap_at_r", "r_precision"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_allclose(getattr(a, field), getattr(c, field), atol=1e-12)


def test_the_prefiltered_selection_equals_a_full_partition(monkeypatch):
    # Rows long enough for _smallest's sampled bound: random, sorted both ways, with many keys equal to the bound,
    # and one whose sampled columns hold its smallest keys (too few fall under the bound: the whole row is used).
    rng = np.random.default_rng(2)
    misjudged = np.full(20000, 10 ** 6)
    misjudged[::retrieval.SAMPLE_STEP] = np.arange(len(misjudged[::retrieval.SAMPLE_STEP]))
    rows = [rng.permutation(20000), np.arange(20000), np.arange(20000)[::-1], rng.integers(0, 50, 20000), misjudged]
    keys = np.array(rows, dtype=np.uint32) << 1
    for r in (1, 7, 500, 2000, 4000):
        expected = np.sort(np.partition(keys, r - 1, axis=1)[:, :r], axis=1)
        np.testing.assert_array_equal(np.sort(retrieval._smallest(keys.copy(), r), axis=1), expected)
    x, y = clustered(6300, 10, 8, 4)
    ranked = retrieval.rank(x[:300], y[:300], x[300:], y[300:], knn_k=KNN_K)
    monkeypatch.setattr(retrieval, "PREFILTER_COLUMNS", 10 ** 9)
    whole = retrieval.rank(x[:300], y[:300], x[300:], y[300:], knn_k=KNN_K)
    for field in ("knn_labels", "relevant", "first_relevant_rank", "ap_at_r", "r_precision"):
        np.testing.assert_array_equal(getattr(ranked, field), getattr(whole, field))


@pytest.mark.parametrize("shift", [1e4, -1e4, 1e6])
def test_exact_ties_survive_a_shift(shift):
    # Integer coordinates: many exactly equal distances, which the pessimistic tie rule decides. Shifted by a
    # representable amount they are the same ties, and the centring must not turn them into rounding noise.
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, (120, 2)).astype(np.float32)
    y = rng.integers(0, 4, 120)
    plain = retrieval.rank(x, y, None, None, knn_k=1, chunk=16)
    moved = retrieval.rank(x + np.float32(shift), y, None, None, knn_k=1, chunk=16)
    for field in ("relevant", "first_relevant_rank", "ap_at_r", "r_precision"):
        np.testing.assert_array_equal(getattr(plain, field), getattr(moved, field))


@pytest.mark.parametrize("scale", [2.0 ** 665, 2.0 ** -700, 2.0 ** 1019], ids=["1e200", "1e-211", "1e307"])
def test_float64_tensors_of_any_finite_scale_rank_exactly(scale):
    # Squares of 1e200 overflow float64 itself; torch tensors keep their float64, and the ranking scales first.
    # A power of two scales exactly, so the oracle on the unscaled values is the oracle on the scaled ones.
    x, y = transformed("plain")
    big = torch.tensor(x, dtype=torch.float64) * scale
    for distance in ("euclidean", "cosine"):
        assert ours(big, y, distance=distance) == pytest.approx(oracle(x, y, distance=distance), abs=1e-6)


def test_float64_tensors_with_an_offset_beyond_float32_rank_exactly():
    x, y = transformed("plain")
    moved = torch.tensor(x, dtype=torch.float64) + 1e12  # float32 would keep nothing of x
    expected = oracle(moved.numpy(), y, distance="euclidean")
    assert expected == pytest.approx(oracle(x, y, distance="euclidean"), abs=0.05)  # an honest, non-trivial input
    assert ours(moved, y, distance="euclidean") == pytest.approx(expected, abs=1e-6)


# --- clustering, verification, triplets, episodes: invariant to a shift (euclidean) and a scale -----------------

SHIFT_INVARIANT = ["nmi", "ami", "verification", "triplet_accuracy", "episode_accuracy"]
SCALE_INVARIANT = [*SHIFT_INVARIANT, "original_few_shot"]
OPTIONS = dict(n_way=4, n_episodes=100, n_pairs=2000, n_triplets=2000, few_shot_queries=300)


def family_metrics(x, y, metrics, distance="euclidean") -> dict[str, float]:
    return evaluate.evaluate(x, y, metrics=metrics, distance=distance, seed=1, **OPTIONS)


@pytest.mark.parametrize("shift", [1e4, -1e4, 1e6])
def test_pair_and_clustering_metrics_do_not_move_with_a_shift(shift):
    x, y = clustered(300, 5, 8, 3, 2.0)
    moved = (x + np.float32(shift)).astype(np.float32)
    base = (moved.astype(np.float64) - shift).astype(np.float32)  # exactly the embeddings that were shifted
    expected = family_metrics(base, y, SHIFT_INVARIANT)
    assert 0.3 < expected["nmi"] < 1 and 0.5 < expected["triplet_accuracy"] < 1  # not trivially perfect
    assert family_metrics(moved, y, SHIFT_INVARIANT) == expected


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("scale", [1e20, 1e-20, 1e-30, 2.0 ** 66, 2.0 ** -100])
def test_pair_and_clustering_metrics_do_not_move_with_a_scale(scale, distance):
    x, y = clustered(300, 5, 8, 3, 2.0)
    expected = family_metrics(x, y, SCALE_INVARIANT, distance)
    got = family_metrics((x * np.float32(scale)).astype(np.float32), y, SCALE_INVARIANT, distance)
    # The threshold is a distance: euclidean ones scale with the embeddings (exactly for a power of two; a decimal
    # scale rounds the float32 embeddings themselves).
    threshold = expected.pop("verification_threshold") * (scale if distance == "euclidean" else 1.0)
    if math.frexp(scale)[0] == 0.5 and distance == "euclidean":
        assert got.pop("verification_threshold") == threshold
    else:
        assert got.pop("verification_threshold") == pytest.approx(threshold, rel=1e-6)
    assert got == expected


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_direct_calls_on_float64_beyond_float32_match_the_unscaled_values(distance):
    x, y = clustered(300, 5, 8, 3, 2.0)
    big, tiny = x.astype(np.float64) * 2.0 ** 665, x.astype(np.float64) * 2.0 ** -1000
    for scaled, factor in ((big, 2.0 ** 665), (tiny, 2.0 ** -1000)):
        assert clustering.nmi_ami(scaled, y, distance=distance, seed=1) == clustering.nmi_ami(x, y, distance=distance,
                                                                                          seed=1)
        assert pairs.triplet_accuracy(scaled, y, distance=distance) == pairs.triplet_accuracy(x, y, distance=distance)
        assert pairs.n_way_k_shot(scaled, y, distance=distance) == pairs.n_way_k_shot(x, y, distance=distance)
        expected = pairs.verification(x, y, distance=distance)
        got = pairs.verification(scaled, y, distance=distance)
        if distance == "euclidean":
            got["verification_threshold"] /= factor
        assert got == expected
    assert pairs.original_few_shot(tiny, y) == pairs.original_few_shot(x, y)


def test_near_duplicate_pairs_are_ranked_by_their_cosine():
    # 1 - a.b / (|a| |b|) of two vectors 1e-9 apart in angle is pure rounding noise; the chord form is not.
    a = np.array([[1.0, 2.0, 3.0]])
    b, c = a + [[0.0, 1e-9, 0.0]], a + [[0.0, 2e-9, 0.0]]
    assert 0 < pairs.pair_distance(a, b, "cosine")[0] < pairs.pair_distance(a, c, "cosine")[0]


# --- refusals: finite inputs that cannot be handled --------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
def test_float64_beyond_float32_gives_the_right_number_or_one_line(as_tensor):
    # Squares of 1e200 overflow even float64. evaluate takes numpy embeddings as float32 (where 1e200 is infinite)
    # and pair and clustering metrics get float32 too; retrieval keeps a tensor's float64 and scales it exactly.
    x, y = clustered(200, 4, 8, 0)
    big = x.astype(np.float64) * 2.0 ** 665
    big = torch.tensor(big) if as_tensor else big
    metrics = [*RETRIEVAL, "nmi", "verification", "triplet_accuracy", "episode_accuracy"]
    expected = evaluate.evaluate(x, y, metrics=metrics, n_episodes=10, n_way=4)
    answered = []
    for name in metrics:
        try:
            got = evaluate.evaluate(big, y, metrics=[name], n_episodes=10, n_way=4)
        except HarnessError as refused:
            assert "\n" not in str(refused)
            continue
        answered.append(name)
        for key, value in got.items():
            scale = 2.0 ** 665 if key == "verification_threshold" else 1.0
            assert value == pytest.approx(expected[key] * scale, rel=1e-12, abs=1e-12), key
    if as_tensor:
        assert set(RETRIEVAL) <= set(answered)


def test_a_verification_threshold_beyond_float64_is_refused_in_one_line():
    # Coordinates near the float64 limit in 64 dimensions: distances between them exceed it, and so would the
    # threshold reported in the embeddings' units. The comparisons themselves are still exact.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 40)
    x = np.sign(rng.standard_normal((4, 64)))[y] + 0.5 * rng.standard_normal((160, 64))
    huge = x / np.abs(x).max() * 1.5e308
    assert np.isfinite(huge).all()
    with pytest.raises(HarnessError, match="float64") as caught:
        pairs.verification(huge, y, n_pairs=500)
    assert "\n" not in str(caught.value)
    assert pairs.triplet_accuracy(huge, y) == pairs.triplet_accuracy(x, y)
    assert clustering.nmi_ami(huge, y, seed=1) == clustering.nmi_ami(x, y, seed=1)
