"""evaluate.clustering: NMI and AMI equal scikit-learn's on given clusters and pytorch-metric-learning's on k-means."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import FaissKMeans
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from harness.errors import HarnessError
from harness.evaluate import clustering
from tests.conftest import clustered


def blobs(per_class: int, classes: int, dim: int, seed: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Class centres on distinct axes, 10 apart, so that well-separated also holds in angle (cosine)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(classes), per_class))
    x = 10 * np.eye(classes, dim)[labels] + spread * rng.standard_normal((len(labels), dim))
    return x.astype(np.float32), labels


@pytest.mark.parametrize("seed", range(3))
def test_mutual_information_equals_sklearn_on_given_clusters(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 500)
    clusters = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 8, 500))
    ours = clustering.mutual_information(clusters, labels)
    assert ours["nmi"] == pytest.approx(normalized_mutual_info_score(labels, clusters), abs=1e-12)
    assert ours["ami"] == pytest.approx(adjusted_mutual_info_score(labels, clusters), abs=1e-12)
    assert isinstance(ours["nmi"], float) and isinstance(ours["ami"], float)
    assert 0 < ours["ami"] < ours["nmi"] < 1


def test_mutual_information_ignores_cluster_names():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert clustering.mutual_information(np.array([7, 7, 3, 3, 5, 5]), labels) == {"nmi": 1.0, "ami": 1.0}


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_nmi_ami_is_perfect_on_well_separated_blobs(distance):
    # k-means has a single random start, which on some seeds merges two blobs even this far apart; seed 1 does not.
    x, y = blobs(60, 3, 8, 0, 0.3)
    assert clustering.nmi_ami(x, y, distance=distance, seed=1) == {"nmi": 1.0, "ami": 1.0}


def test_more_clusters_than_classes_lowers_nmi():
    x, y = blobs(60, 4, 8, 0, 0.3)
    assert clustering.nmi_ami(x, y, n_clusters=8)["nmi"] < 1.0


@pytest.mark.parametrize("seed,spread", [(0, 0.5), (1, 1.0)])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_nmi_ami_equal_pml_on_separated_blobs(seed, spread, distance):
    # Three classes, and seeds where the single random k-means start (ours and pml's seed 1234) finds every blob:
    # with more classes it often merges two of them.
    x, y = blobs(80, 3, 10, seed, spread)
    oracle_input = x / np.linalg.norm(x, axis=1, keepdims=True) if distance == "cosine" else x
    calc = AccuracyCalculator(include=("NMI", "AMI"), device=torch.device("cpu"))
    oracle = calc.get_accuracy(torch.tensor(oracle_input), torch.tensor(y))
    ours = clustering.nmi_ami(x, y, distance=distance, seed=seed)
    assert ours["nmi"] == pytest.approx(oracle["NMI"], abs=1e-6)
    assert ours["ami"] == pytest.approx(oracle["AMI"], abs=1e-6)


@pytest.mark.parametrize("seed", range(2))
def test_nmi_ami_equal_pml_with_the_same_kmeans_on_overlapping_blobs(seed):
    # Overlapping classes: the partition depends on k-means, so the oracle gets the same faiss settings.
    x, y = blobs(80, 5, 10, seed, 6.0)
    calc = AccuracyCalculator(include=("NMI", "AMI"), device=torch.device("cpu"),
                              kmeans_func=FaissKMeans(niter=100, seed=seed, verbose=False))
    oracle = calc.get_accuracy(torch.tensor(x), torch.tensor(y))
    ours = clustering.nmi_ami(x, y, seed=seed)
    assert 0 < ours["nmi"] < 0.9
    assert ours["nmi"] == pytest.approx(oracle["NMI"], abs=1e-6)
    assert ours["ami"] == pytest.approx(oracle["AMI"], abs=1e-6)


def test_nmi_ami_is_deterministic_for_a_seed():
    x, y = blobs(80, 5, 10, 3, 6.0)
    assert clustering.nmi_ami(x, y, seed=2) == clustering.nmi_ami(x, y, seed=2)


GOOD_X, GOOD_Y = blobs(5, 3, 4, 0, 0.1)


def nan_x() -> np.ndarray:
    x = GOOD_X.copy()
    x[0, 0] = np.nan
    return x


BAD_INPUTS = [
    ("1-D", lambda: clustering.nmi_ami(np.zeros(5), np.zeros(5)), "non-empty \\(n, d\\)"),
    ("empty", lambda: clustering.nmi_ami(np.zeros((0, 3)), np.zeros(0)), "non-empty"),
    ("labels", lambda: clustering.nmi_ami(GOOD_X, GOOD_Y[:-1]), "labels of shape"),
    ("nan", lambda: clustering.nmi_ami(nan_x(), GOOD_Y), "NaN or infinite"),
    ("inf", lambda: clustering.nmi_ami(GOOD_X * np.inf, GOOD_Y), "NaN or infinite"),
    ("distance", lambda: clustering.nmi_ami(GOOD_X, GOOD_Y, distance="manhattan"), "unknown distance"),
    ("zero vector", lambda: clustering.nmi_ami(GOOD_X * 0, GOOD_Y, distance="cosine"), "all-zero"),
    ("one class", lambda: clustering.nmi_ami(GOOD_X, np.zeros(len(GOOD_Y))), "at least 2 classes"),
    ("too many clusters", lambda: clustering.nmi_ami(GOOD_X, GOOD_Y, n_clusters=16), "n_clusters"),
    ("zero clusters", lambda: clustering.nmi_ami(GOOD_X, GOOD_Y, n_clusters=0), "n_clusters"),
    ("given: lengths", lambda: clustering.mutual_information(np.zeros(3), np.arange(4)), "one length"),
    ("given: empty", lambda: clustering.mutual_information(np.zeros(0), np.zeros(0)), "non-empty"),
    ("given: one class", lambda: clustering.mutual_information(np.arange(4), np.zeros(4)), "at least 2 classes"),
]


@pytest.mark.parametrize("call,match", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_raise_one_line(call, match):
    with pytest.raises(HarnessError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_a_seed_beyond_faiss_32_bits_is_taken_modulo_2_31_and_smaller_seeds_as_they_are():
    from harness.evaluate.clustering import kmeans_assign

    x, _ = clustered(200, 4, 8, seed=3)
    assert np.array_equal(kmeans_assign(x, 4, seed=2**31 + 5), kmeans_assign(x, 4, seed=5))
    assert kmeans_assign(x, 4, seed=2**63 - 1).shape == (200,)
