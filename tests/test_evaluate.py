"""evaluate: kNN accuracy equals scikit-learn's; precision@1, MAP@R and R-precision equal pytorch-metric-learning's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from sklearn.neighbors import KNeighborsClassifier

from harness import evaluate
from harness.errors import HarnessError


def clustered(n: int, classes: int, dim: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, dim)) * 2
    x = centres[labels] + spread * rng.standard_normal((n, dim))
    return x.astype(np.float32), labels


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


def test_map_at_r_by_hand():
    # Query 0 (label 0) has R = 2 relevant items; ranked list: hit, miss, hit -> MAP@R = (1/1 + 0)/2 = 0.5
    x = np.array([[0.0], [1.0], [2.0], [3.5], [10.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 0, 1])
    nb = evaluate.neighbours(x[:1], y[:1], x, y, k=4)
    assert nb.labels[0].tolist() == [0, 0, 1, 0]
    # The query is inside the reference here (distance 0 to itself), so R counts it: R = 3 -> (1 + 1 + 0)/3.
    assert evaluate.map_at_r(nb) == pytest.approx(2 / 3)
    self_nb = evaluate.neighbours(x, y, k=4)
    assert self_nb.labels[0].tolist()[:3] == [0, 1, 0] and self_nb.relevant[0] == 2
    assert evaluate.map_at_r(evaluate.Neighbours(self_nb.labels[:1], y[:1], self_nb.relevant[:1], 1)) == 0.5


@pytest.mark.parametrize("query,labels,match", [
    (np.array([[np.nan, 0.0]]), np.array([0]), "NaN or infinite"),
    (np.zeros((3, 2)), np.array([0, 1]), "labels of shape"),
    (np.zeros((0, 2)), np.zeros(0), "non-empty"),
    (np.zeros(3), np.zeros(3), "non-empty \\(n, d\\)"),
])
def test_bad_embeddings_are_refused(query, labels, match):
    with pytest.raises(HarnessError, match=match):
        evaluate.evaluate(query.astype(np.float32), labels, metrics=["precision_at_1"])


def test_unknown_metric_suggests_a_name():
    with pytest.raises(HarnessError, match="did you mean 'map_at_r'"):
        evaluate.evaluate(np.zeros((4, 2), np.float32), np.arange(4), metrics=["map_at_rr"])
