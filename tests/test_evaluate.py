"""evaluate: kNN accuracy equals scikit-learn's; precision@1, MAP@R and R-precision equal pytorch-metric-learning's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from sklearn.neighbors import KNeighborsClassifier

from harness import evaluate
from harness.evaluate import retrieval
from harness.errors import HarnessError
from tests.conftest import clustered


@pytest.mark.parametrize("seed,spread", [(0, 0.5), (1, 2.0), (2, 5.0)])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_accuracy_equals_sklearn(seed, spread, k):
    ref, ref_y = clustered(600, 7, 16, seed, spread)
    query, query_y = clustered(300, 7, 16, seed + 100, spread)
    sklearn = KNeighborsClassifier(n_neighbors=k).fit(ref, ref_y).score(query, query_y)
    ours = evaluate.evaluate(query, query_y, ref, ref_y, metrics=["knn_accuracy"], knn_k=k)["knn_accuracy"]
    assert ours == pytest.approx(sklearn, abs=1e-12)


def test_knn_tie_goes_to_smallest_label_like_sklearn():
    # Three neighbours of three different classes: every vote ties; scikit-learn predicts the smallest label.
    ref = np.array([[1.0, 0], [0, 1.0], [-1.0, 0], [10, 10]], dtype=np.float32)
    ref_y = np.array([5, 2, 9, 0])
    query, query_y = np.zeros((1, 2), dtype=np.float32) + [[0.01, 0.02]], np.array([2])
    sklearn = KNeighborsClassifier(n_neighbors=3).fit(ref, ref_y).predict(query.astype(np.float32))
    assert sklearn[0] == 2
    assert evaluate.evaluate(query, query_y, ref, ref_y, metrics=["knn_accuracy"])["knn_accuracy"] == 1.0


@pytest.mark.parametrize("seed,spread", [(0, 0.7), (1, 3.0)])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_retrieval_metrics_equal_pml_on_a_set_against_itself(seed, spread, distance):
    x, y = clustered(800, 6, 12, seed, spread)
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                              k="max_bin_count", device=torch.device("cpu"))
    # Cosine ranking = Euclidean ranking of L2-normalised vectors, which is what the oracle is given.
    oracle_input = x / np.linalg.norm(x, axis=1, keepdims=True) if distance == "cosine" else x
    oracle = calc.get_accuracy(torch.tensor(oracle_input), torch.tensor(y))
    ours = evaluate.evaluate(x, y, metrics=["precision_at_1", "map_at_r", "r_precision"], distance=distance)
    assert ours["precision_at_1"] == pytest.approx(oracle["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(oracle["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(oracle["r_precision"], abs=1e-6)


def test_retrieval_metrics_equal_pml_with_a_separate_reference():
    ref, ref_y = clustered(700, 5, 10, 3, 1.5)
    query, query_y = clustered(200, 5, 10, 4, 1.5)
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                              k="max_bin_count", device=torch.device("cpu"))
    oracle = calc.get_accuracy(torch.tensor(query), torch.tensor(query_y), torch.tensor(ref), torch.tensor(ref_y),
                               ref_includes_query=False)
    ours = evaluate.evaluate(query, query_y, ref, ref_y, metrics=["precision_at_1", "map_at_r", "r_precision"])
    assert ours["precision_at_1"] == pytest.approx(oracle["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(oracle["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(oracle["r_precision"], abs=1e-6)


def naive_ranking(query, query_labels, reference=None, reference_labels=None):
    """The definitions written as loops over a fully sorted distance row (other-class references first on ties)."""
    same = reference is None
    if same:
        reference, reference_labels = query, query_labels
    out = []
    for i, (q, label) in enumerate(zip(query, query_labels)):
        d = ((reference.astype(np.float64) - q) ** 2).sum(1)
        relevant = reference_labels == label
        keep = np.ones(len(d), bool)
        if same:
            keep[i] = False
        d, relevant = d[keep], relevant[keep]
        order = np.lexsort((relevant, d))  # by distance, then other-class first
        hits = relevant[order]
        r = int(relevant.sum())
        first = int(np.argmax(hits)) + 1 if r else 0
        ap = sum(hits[:k + 1].sum() / (k + 1) for k in range(r) if hits[k]) / r if r else np.nan
        out.append((r, first, ap, hits[:r].sum() / r if r else np.nan))
    return out


@pytest.mark.parametrize("self_mode", [True, False])
def test_retrieval_equals_naive_loops_with_many_ties(self_mode):
    rng = np.random.default_rng(5)
    # Coordinates on a coarse grid: many exactly equal distances, duplicates and a singleton class.
    x = rng.integers(0, 3, (120, 2)).astype(np.float32)
    y = rng.integers(0, 4, 120)
    y[7] = 9
    ref = None if self_mode else rng.integers(0, 3, (200, 2)).astype(np.float32)
    ref_y = None if self_mode else rng.integers(0, 5, 200)
    ranking = retrieval.rank(x, y, ref, ref_y, knn_k=1, chunk=16)
    for i, (r, first, ap, rp) in enumerate(naive_ranking(x, y, ref, ref_y)):
        assert ranking.relevant[i] == r and ranking.first_relevant_rank[i] == first
        if r:
            assert ranking.ap_at_r[i] == pytest.approx(ap, abs=1e-12)
            assert ranking.r_precision[i] == pytest.approx(rp, abs=1e-12)


def test_collapsed_embeddings_do_not_score_well():
    y = np.repeat(np.arange(4), 25)
    values = evaluate.evaluate(np.ones((100, 8), np.float32), y, metrics=["precision_at_1", "map_at_r"])
    assert values["precision_at_1"] == 0.0 and values["map_at_r"] < 0.05


def test_recall_at_k_is_a_hit_rate_within_k():
    x, y = clustered(400, 8, 6, 11, 3.0)
    values = evaluate.evaluate(x, y, metrics=["recall_at_k", "precision_at_1"], recall_ks=(1, 2, 4, 8, 16, 32))
    naive = naive_ranking(x, y)
    for k in (1, 2, 4, 8, 16, 32):
        expected = np.mean([1 <= first <= k for r, first, _, _ in naive if r])
        assert values[f"recall_at_{k}"] == pytest.approx(expected, abs=1e-12)
    assert values["recall_at_1"] == values["precision_at_1"]
    assert [values[f"recall_at_{k}"] for k in (1, 2, 4, 8, 16, 32)] == sorted(
        values[f"recall_at_{k}"] for k in (1, 2, 4, 8, 16, 32))


def test_absent_labels_and_singletons_are_excluded_like_pml():
    ref, ref_y = clustered(500, 5, 10, 21, 1.5)
    query, query_y = clustered(200, 7, 10, 22, 1.5)  # labels 5 and 6 are absent from the reference
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                              k="max_bin_count", device=torch.device("cpu"))
    oracle = calc.get_accuracy(torch.tensor(query), torch.tensor(query_y), torch.tensor(ref), torch.tensor(ref_y),
                               ref_includes_query=False)
    ours = evaluate.evaluate(query, query_y, ref, ref_y,
                             metrics=["precision_at_1", "map_at_r", "r_precision", "excluded_queries"])
    assert ours["excluded_queries"] == float(np.isin(query_y, [5, 6]).sum()) > 0
    assert ours["precision_at_1"] == pytest.approx(oracle["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(oracle["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(oracle["r_precision"], abs=1e-6)


def test_gpu_code_path_equals_cpu_path(monkeypatch):
    x, y = clustered(300, 6, 8, 31, 2.0)
    cpu = retrieval.rank(x, y, None, None, knn_k=3, chunk=50)
    monkeypatch.setattr(retrieval, "FORCE_TORCH", True)
    gpu_like = retrieval.rank(x, y, None, None, knn_k=3, chunk=50)
    np.testing.assert_array_equal(cpu.first_relevant_rank, gpu_like.first_relevant_rank)
    np.testing.assert_allclose(cpu.ap_at_r, gpu_like.ap_at_r, atol=1e-12)
    np.testing.assert_allclose(cpu.r_precision, gpu_like.r_precision, atol=1e-12)


def test_chunk_size_does_not_change_any_number():
    x, y = clustered(333, 5, 8, 41, 2.0)
    ref, ref_y = clustered(777, 5, 8, 42, 2.0)
    a = retrieval.rank(x, y, ref, ref_y, knn_k=5, chunk=7)
    b = retrieval.rank(x, y, ref, ref_y, knn_k=5, chunk=4096)
    for field in ("knn_labels", "relevant", "first_relevant_rank", "ap_at_r", "r_precision"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_torch_tensors_are_accepted():
    x, y = clustered(200, 4, 8, 51, 1.0)
    assert evaluate.evaluate(torch.tensor(x), y, metrics=["map_at_r"]) == evaluate.evaluate(x, y, metrics=["map_at_r"])


GOOD = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
GOOD_Y = np.array([0, 0, 1, 1, 2, 2])
BAD_INPUTS = [
    ("NaN", dict(query=np.array([[np.nan, 0.0], [0.0, 1.0]]), query_labels=np.array([0, 1])), "NaN or infinite"),
    ("infinity", dict(query=np.array([[np.inf, 0.0], [0.0, 1.0]]), query_labels=np.array([0, 1])), "NaN or infinite"),
    ("length mismatch", dict(query=np.zeros((3, 2)), query_labels=np.array([0, 1])), "labels of shape"),
    ("empty", dict(query=np.zeros((0, 2)), query_labels=np.zeros(0)), "non-empty"),
    ("1-d embeddings", dict(query=np.zeros(3), query_labels=np.zeros(3)), "non-empty \\(n, d\\)"),
    ("single class", dict(query=GOOD, query_labels=np.zeros(6)), "same class"),
    ("dimension mismatch", dict(query=GOOD, query_labels=GOOD_Y, reference=np.zeros((4, 2)),
                                reference_labels=np.array([0, 1, 0, 1])), "dimensions"),
    ("reference without labels", dict(query=GOOD, query_labels=GOOD_Y, reference=GOOD), "both reference"),
    ("no answerable query", dict(query=GOOD, query_labels=GOOD_Y, reference=GOOD,
                                 reference_labels=np.array([5, 5, 6, 6, 7, 7])), "no query has a reference"),
    ("text embeddings", dict(query=[["a", "b"]], query_labels=[0]), "numeric"),
    ("bad distance", dict(query=GOOD, query_labels=GOOD_Y, distance="manhattan"), "unknown distance"),
    ("bad k", dict(query=GOOD, query_labels=GOOD_Y, knn_k=0), "positive"),
]


@pytest.mark.parametrize("what,kwargs,match", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_one_clear_error(what, kwargs, match):
    kwargs = {"metrics": ["precision_at_1", "knn_accuracy"], **kwargs}
    with pytest.raises(HarnessError, match=match) as info:
        evaluate.evaluate(**kwargs)
    assert "\n" not in str(info.value)


def test_unknown_metric_suggests_a_name():
    with pytest.raises(HarnessError, match="did you mean 'map_at_r'"):
        evaluate.evaluate(np.zeros((4, 2), np.float32), np.arange(4), metrics=["map_at_rr"])


# --- episodes with N = every class, the chance level beside them, and a classifier head's accuracy ---------------

def separated_clusters(per_class: int, classes: int, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(classes), per_class)
    noise = 0.01 * np.random.default_rng(0).standard_normal((len(labels), dim))
    return (100 * np.eye(classes, dim)[labels] + noise).astype(np.float32), labels


def test_episode_accuracy_with_every_class_and_its_chance_level():
    x, y = separated_clusters(6, 4)
    got = evaluate.evaluate(x, y, metrics=["episode_accuracy"], n_way="all", k_shot=1, n_episodes=50)
    assert set(got) == {"episode_accuracy", "episode_ci95", "episodes", "episode_chance"}
    assert got["episode_chance"] == 0.25 and got["episode_accuracy"] == 1.0 and got["episodes"] == 50
    two = evaluate.evaluate(x, y, metrics=["episode_accuracy"], n_way=2, k_shot=1, n_episodes=50)
    assert two["episode_chance"] == 0.5 and two["episode_accuracy"] == 1.0
    default = evaluate.evaluate(*separated_clusters(4, 6), metrics=["episode_accuracy"], n_episodes=10)
    assert default["episode_chance"] == 0.2  # 5-way unless told


def test_n_way_all_counts_only_the_classes_an_episode_can_draw():
    x, y = separated_clusters(6, 5)
    y = y.copy()
    y[-5:] = [4, 5, 6, 7, 8]  # classes 5..8 have one item: no query left after a 1-shot support
    got = evaluate.evaluate(x, y, metrics=["episode_accuracy"], n_way="all", k_shot=1, n_episodes=20)
    assert got["episode_chance"] == 0.2  # classes 0..4 (class 4 keeps 2 items)
    restricted = evaluate.evaluate(x, y, metrics=["episode_accuracy"], n_way="all", k_shot=1, n_episodes=20,
                                   classes=[1, 2, 3])
    assert restricted["episode_chance"] == pytest.approx(1 / 3)
    # n_way "all" is every class in every episode: the same as naming the number.
    named = evaluate.evaluate(x, y, metrics=["episode_accuracy"], n_way=5, k_shot=1, n_episodes=20)
    assert named == got


def test_episodes_on_random_embeddings_sit_near_the_reported_chance():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 30)
    got = evaluate.evaluate(rng.standard_normal((120, 8)), y, metrics=["episode_accuracy"], n_way="all",
                            n_episodes=300, n_queries=10)
    assert got["episode_accuracy"] == pytest.approx(got["episode_chance"], abs=0.05)


def test_original_few_shot_options_reach_the_metric():
    from harness.evaluate import pairs

    x, y = clustered(120, 4, 8, 9, 2.0)
    got = evaluate.evaluate(x, y, metrics=["original_few_shot"], seed=3, few_shot_queries=50,
                            few_shot_threshold=0.5)
    assert got == pairs.original_few_shot(x, y, n_queries=50, threshold=0.5, seed=3)
    assert got != evaluate.evaluate(x, y, metrics=["original_few_shot"], seed=3)  # the defaults: 1000 and 0.2


def test_classification_accuracy():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 5.0, 1.0], [1.0, 0.0, 3.0], [0.5, 0.4, 0.0]])
    assert evaluate.classification_accuracy(logits, [0, 1, 2, 1]) == 0.75
    assert evaluate.classification_accuracy(torch.tensor(logits), torch.tensor([1, 1, 2, 1])) == 0.5
    # A tie goes to the smaller class index.
    tied = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    assert evaluate.classification_accuracy(tied, [1, 0]) == 1.0
    assert evaluate.classification_accuracy(tied, [2, 2]) == 0.0


@pytest.mark.parametrize("logits,labels", [
    (np.zeros((3, 2)), [0, 1]),
    (np.zeros((2, 2)), [0, 1, 1]),
    (np.zeros(3), [0, 1, 1]),
    (np.zeros((0, 2)), []),
], ids=["fewer labels", "more labels", "1-d logits", "empty"])
def test_classification_accuracy_refuses_mismatched_shapes(logits, labels):
    with pytest.raises(HarnessError, match="classification_accuracy") as info:
        evaluate.classification_accuracy(logits, labels)
    assert "\n" not in str(info.value)


def test_result_names_cover_heads_prefixes_and_new_outputs():
    from harness import catalog

    names = catalog.result_names()
    for name in ("classification_accuracy", "val_classification_accuracy", "unseen_episode_accuracy",
                 "unseen_episode_chance", "episode_chance", "unseen_always_different_accuracy",
                 "original_few_shot_accuracy", "recall_at_32", "val_recall_at_1", "knn_accuracy"):
        assert name in names, name
    assert "recall_at_k" not in names and "original_few_shot" not in names  # metric names, not outputs
    assert names == sorted(set(names))
