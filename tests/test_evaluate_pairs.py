"""evaluate.pairs: ROC AUC equals scikit-learn's; triplets, verification and episodes equal naive loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from harness.errors import HarnessError
from tests.conftest import clustered
from harness.evaluate import pairs


def separated(per_class: int, classes: int, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Classes on distinct axes (far apart, also in angle) with tiny noise: every metric should be perfect."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    centres = 100 * np.eye(classes, dim)
    return centres[labels] + 0.01 * rng.standard_normal((len(labels), dim)), labels


def naive_distance(a: np.ndarray, b: np.ndarray, distance: str) -> float:
    a, b = [float(v) for v in a], [float(v) for v in b]
    if distance == "euclidean":
        return math.sqrt(sum((p - q) ** 2 for p, q in zip(a, b)))
    dot = sum(p * q for p, q in zip(a, b))
    return 1 - dot / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)))


# --- ROC AUC ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_roc_auc_equals_sklearn_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(500)
    same = rng.random(500) < 0.3
    d[same] -= 0.7
    assert pairs.roc_auc(d, same) == pytest.approx(roc_auc_score(same, -d), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_roc_auc_equals_sklearn_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 4, 400).astype(float)  # four distinct values: almost every pair is tied
    same = rng.random(400) < 0.5
    assert pairs.roc_auc(d, same) == pytest.approx(roc_auc_score(same, -d), abs=1e-12)
    assert pairs.roc_auc(np.zeros(6), [1, 0, 1, 0, 0, 1]) == 0.5


# --- triplets --------------------------------------------------------------------------------------------------

def test_sampled_triplets_are_valid():
    _, y = clustered(300, 7, 4, 0)
    y[:3] = [100, 101, 102]  # singleton classes: never anchors, still negatives
    a, p, n = pairs.sample_triplets(y, 5000, np.random.default_rng(0))
    assert (a != p).all() and (y[a] == y[p]).all() and (y[a] != y[n]).all()
    assert not np.isin(a, [0, 1, 2]).any() and np.isin(n, [0, 1, 2]).any()


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_triplet_accuracy_equals_a_naive_loop(distance):
    x, y = clustered(200, 5, 6, 1, spread=2.0)
    ours = pairs.triplet_accuracy(x, y, n_triplets=2000, seed=3, distance=distance)
    a, p, n = pairs.sample_triplets(y, 2000, np.random.default_rng(3))
    correct = sum(naive_distance(x[i], x[j], distance) < naive_distance(x[i], x[k], distance)
                  for i, j, k in zip(a, p, n))
    assert 0.5 < ours < 1.0
    assert ours == correct / 2000


def test_triplet_accuracy_is_perfect_on_separated_clusters_and_a_tie_is_wrong():
    x, y = separated(10, 4)
    assert pairs.triplet_accuracy(x, y, n_triplets=3000) == 1.0
    # Every item at one point: every triplet is a tie, which counts as wrong.
    assert pairs.triplet_accuracy(np.ones((20, 3)), np.arange(20) % 4) == 0.0


def test_triplet_accuracy_is_deterministic_for_a_seed():
    x, y = clustered(300, 6, 5, 2, spread=3.0)
    first = pairs.triplet_accuracy(x, y, n_triplets=500, seed=7)
    assert first == pairs.triplet_accuracy(x, y, n_triplets=500, seed=7)
    assert any(first != pairs.triplet_accuracy(x, y, n_triplets=500, seed=s) for s in range(8, 12))


# --- verification ----------------------------------------------------------------------------------------------

def test_balanced_pairs_are_balanced_and_valid():
    _, y = clustered(300, 9, 2, 3)
    y[:2] = [50, 51]
    i, j, same = pairs.balanced_pairs(y, 1001, np.random.default_rng(0))
    assert same.sum() == 500 and (~same).sum() == 501
    assert (i[same] != j[same]).all() and (y[i[same]] == y[j[same]]).all()
    assert (y[i[~same]] != y[j[~same]]).all()


def test_stratified_split_is_per_class_and_disjoint():
    y = np.repeat(np.arange(5), [2, 3, 4, 5, 10])
    val, test = pairs.stratified_split(y, 0.5, np.random.default_rng(0))
    assert np.intersect1d(val, test).size == 0 and len(val) + len(test) == len(y)
    assert np.bincount(y[val]).tolist() == [1, 2, 2, 3, 5]  # round half up


def naive_best_threshold(d: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Every threshold that can change a prediction, tried one by one; the first best is kept."""
    values = sorted(set(d.tolist()))
    candidates = [values[0] - 1e-9] + [(p + q) / 2 for p, q in zip(values, values[1:])] + [values[-1]]
    best, best_t = -1.0, None
    for t in candidates:
        accuracy = sum((di <= t) == si for di, si in zip(d, same)) / len(d)
        if accuracy > best:
            best, best_t = accuracy, t
    return best_t, best


@pytest.mark.parametrize("seed", range(3))
def test_choose_threshold_equals_a_naive_search(seed):
    rng = np.random.default_rng(seed)
    same = rng.random(300) < 0.5
    d = np.round(rng.standard_normal(300) + 1.5 * ~same, 1)  # rounding makes ties
    t, best = naive_best_threshold(d, same)
    ours = pairs.choose_threshold(d, same)
    assert pairs.threshold_accuracy(d, same, ours) == pytest.approx(best, abs=1e-15)
    assert ours == pytest.approx(t, abs=1e-8)


def test_choose_threshold_ties_go_to_the_smallest():
    # Thresholds 1.5 and 3.5 both classify 3 of 4 correctly; the smaller wins.
    assert pairs.choose_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 1, 0])) == 1.5


def test_verification_accuracy_equals_a_naive_loop_on_its_own_pairs(monkeypatch):
    x, y = clustered(400, 8, 6, 4, spread=2.5)
    drawn = []

    def spy(labels, n_pairs, rng):
        result = original(labels, n_pairs, rng)
        drawn.append((labels, result))
        return result

    original = pairs.balanced_pairs
    monkeypatch.setattr(pairs, "balanced_pairs", spy)
    split = []
    original_split = pairs.stratified_split
    monkeypatch.setattr(pairs, "stratified_split", lambda *a: split.append(original_split(*a)) or split[-1])
    ours = pairs.verification(x, y, n_pairs=400, seed=5, fixed_threshold=0.2)

    (val, test), = split
    assert np.intersect1d(val, test).size == 0
    distances = []
    for part, (labels, (i, j, same)) in zip((val, test), drawn):
        assert (labels == y[part]).all()
        distances.append(([naive_distance(x[part[a]], x[part[b]], "euclidean") for a, b in zip(i, j)], same))
    (val_d, val_same), (test_d, test_same) = distances
    t, _ = naive_best_threshold(np.array(val_d), val_same)
    assert ours["verification_threshold"] == pytest.approx(t, abs=1e-8)
    accuracy = sum((d <= ours["verification_threshold"]) == s for d, s in zip(test_d, test_same)) / len(test_d)
    assert ours["verification_accuracy"] == accuracy
    assert ours["roc_auc"] == pytest.approx(roc_auc_score(test_same, -np.array(test_d)), abs=1e-12)
    assert 0.5 < ours["verification_accuracy"] < 1.0
    # The original's rule on the same test pairs: "same" iff cosine similarity of the given embeddings > 0.2.
    i, j, same = drawn[1][1]
    a, b = x[test[i]], x[test[j]]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert ours["verification_fixed_accuracy"] == ((cosine > 0.2) == same).mean()
    assert "verification_fixed_accuracy" not in pairs.verification(x, y, n_pairs=400, seed=5)


def test_verification_threshold_is_chosen_on_validation_only(monkeypatch):
    # 1-D items; validation classes have same-pair distance 1 and different-pair distances >= 9, so the
    # validation threshold is 5. Test classes have same-pair distance 6: the threshold that is best on the test
    # pairs (anything in [6, 94)) would give 1.0, the validation threshold calls every test pair "different".
    x = np.array([[0.0], [1.0], [10.0], [11.0], [100.0], [106.0], [200.0], [206.0]])
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    monkeypatch.setattr(pairs, "stratified_split", lambda labels, fraction, rng: (np.arange(4), np.arange(4, 8)))
    result = pairs.verification(x, y, n_pairs=100)
    assert result["verification_threshold"] == 5.0
    assert result["verification_accuracy"] == 0.5
    assert result["roc_auc"] == 1.0


def test_verification_is_perfect_on_separated_clusters_and_deterministic():
    x, y = separated(12, 5)
    result = pairs.verification(x, y, n_pairs=500, distance="cosine")
    assert result["verification_accuracy"] == 1.0 and result["roc_auc"] == 1.0
    x, y = clustered(300, 6, 5, 6, spread=3.0)
    assert pairs.verification(x, y, seed=1, n_pairs=300) == pairs.verification(x, y, seed=1, n_pairs=300)


# --- n-way k-shot ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("classifier", ["nearest", "mean"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_episodes_are_perfect_on_separated_clusters(classifier, distance):
    x, y = separated(8, 7)
    result = pairs.n_way_k_shot(x, y, n_way=5, k_shot=3, n_episodes=50, distance=distance, classifier=classifier)
    assert result == {"episode_accuracy": 1.0, "episode_ci95": 0.0, "episodes": 50}


def test_episodes_on_random_embeddings_are_at_chance():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((400, 16)), np.repeat(np.arange(20), 20)
    result = pairs.n_way_k_shot(x, y, n_way=5, k_shot=1, n_episodes=600)
    assert abs(result["episode_accuracy"] - pairs.chance_level(5)) < 0.05
    assert 0 < result["episode_ci95"] < 0.01


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_nearest_and_mean_agree_for_one_shot(distance):
    x, y = clustered(300, 10, 6, 7, spread=3.0)
    nearest = pairs.n_way_k_shot(x, y, n_episodes=100, distance=distance, classifier="nearest")
    mean = pairs.n_way_k_shot(x, y, n_episodes=100, distance=distance, classifier="mean")
    assert nearest == mean and nearest["episode_accuracy"] < 1.0


def naive_episode(x, support, support_y, query, query_y, distance, classifier):
    if classifier == "mean":
        protos = {}
        for label in dict.fromkeys(support_y.tolist()):
            rows = [x[i] / np.linalg.norm(x[i]) if distance == "cosine" else x[i]
                    for i, c in zip(support, support_y) if c == label]
            protos[label] = sum(rows) / len(rows)
        refs = list(protos.items())
    else:
        refs = [(c, x[i]) for i, c in zip(support, support_y)]
    correct = 0
    for q, c in zip(query, query_y):
        predicted = min(refs, key=lambda ref: naive_distance(x[q], ref[1], distance))[0]
        correct += predicted == c
    return correct / len(query)


@pytest.mark.parametrize("classifier", ["nearest", "mean"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_episodes_equal_a_naive_loop(classifier, distance):
    x, y = clustered(300, 9, 6, 8, spread=2.5)
    y[:5] = 99  # a class too small for 5 shots: never drawn
    ours = pairs.n_way_k_shot(x, y, n_way=4, k_shot=5, n_queries=10, n_episodes=3, seed=2, distance=distance,
                              classifier=classifier)
    rng, members = np.random.default_rng(2), pairs.class_members(y)
    eligible = pairs.episode_classes(y, 5)
    assert 99 not in eligible
    accuracies = []
    for _ in range(3):
        s, s_y, q, q_y = pairs.sample_episode(members, eligible, 4, 5, 10, rng)
        assert len(set(s_y.tolist())) == 4 and np.intersect1d(s, q).size == 0 and (y[s] == s_y).all()
        assert (y[q] == q_y).all() and all((q_y == c).sum() == min(10, (y == c).sum() - 5) for c in set(s_y))
        accuracies.append(naive_episode(x, s, s_y, q, q_y, distance, classifier))
    mean = sum(accuracies) / 3
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / 2)
    assert ours["episode_accuracy"] == pytest.approx(mean, abs=1e-12)
    assert ours["episode_ci95"] == pytest.approx(1.96 * std / math.sqrt(3), abs=1e-12)


def test_episodes_respect_the_class_restriction(monkeypatch):
    # Classes 0-4 are separated; 5-9 are one overlapping cloud. Restricted to 0-4 every query is right.
    x, y = separated(6, 5)
    rng = np.random.default_rng(1)
    x = np.concatenate([x, rng.standard_normal((30, 8))])
    y = np.concatenate([y, np.repeat(np.arange(5, 10), 6)])
    assert pairs.n_way_k_shot(x, y, n_episodes=40, classes=range(5))["episode_accuracy"] == 1.0
    assert pairs.n_way_k_shot(x, y, n_episodes=40)["episode_accuracy"] < 1.0
    drawn = []
    original = pairs.sample_episode
    monkeypatch.setattr(pairs, "sample_episode", lambda *a: drawn.append(original(*a)) or drawn[-1])
    pairs.n_way_k_shot(x, y, n_way=3, n_episodes=30, classes=[2, 6, 7, 9])
    assert set(np.concatenate([e[1] for e in drawn]).tolist()) == {2, 6, 7, 9}


def test_episodes_are_deterministic_for_a_seed():
    x, y = clustered(300, 10, 6, 9, spread=3.0)
    first = pairs.n_way_k_shot(x, y, n_episodes=50, seed=4)
    assert first == pairs.n_way_k_shot(x, y, n_episodes=50, seed=4)
    assert first != pairs.n_way_k_shot(x, y, n_episodes=50, seed=5)


def test_chance_level():
    assert pairs.chance_level(5) == 0.2 and isinstance(pairs.chance_level(4), float)


# --- bad inputs ------------------------------------------------------------------------------------------------

GOOD_X, GOOD_Y = separated(6, 5)
ONE_CLASS = (GOOD_X, np.zeros(len(GOOD_Y), dtype=int))
SINGLETONS = (GOOD_X[:5], np.arange(5))


def nan_x() -> np.ndarray:
    x = GOOD_X.copy()
    x[3, 1] = np.nan
    return x


BAD_INPUTS = [
    ("triplets: 1-D", lambda: pairs.triplet_accuracy(np.zeros(5), np.zeros(5)), "non-empty \\(n, d\\)"),
    ("triplets: empty", lambda: pairs.triplet_accuracy(np.zeros((0, 3)), np.zeros(0)), "non-empty"),
    ("triplets: no dims", lambda: pairs.triplet_accuracy(np.zeros((4, 0)), np.zeros(4)), "non-empty"),
    ("triplets: labels", lambda: pairs.triplet_accuracy(GOOD_X, GOOD_Y[:-1]), "labels of shape"),
    ("triplets: nan", lambda: pairs.triplet_accuracy(nan_x(), GOOD_Y), "NaN or infinite"),
    ("triplets: inf", lambda: pairs.triplet_accuracy(GOOD_X * np.inf, GOOD_Y), "NaN or infinite"),
    ("triplets: distance", lambda: pairs.triplet_accuracy(GOOD_X, GOOD_Y, distance="cosin"), "unknown distance"),
    ("triplets: zero vector", lambda: pairs.triplet_accuracy(GOOD_X * 0, GOOD_Y, distance="cosine"), "all-zero"),
    ("triplets: one class", lambda: pairs.triplet_accuracy(*ONE_CLASS), "at least 2 classes"),
    ("triplets: singletons", lambda: pairs.triplet_accuracy(*SINGLETONS), "at least 2 items"),
    ("triplets: n", lambda: pairs.triplet_accuracy(GOOD_X, GOOD_Y, n_triplets=0), "n_triplets"),
    ("auc: one class", lambda: pairs.roc_auc(np.arange(4.0), np.ones(4, bool)), "both same and different"),
    ("auc: lengths", lambda: pairs.roc_auc(np.arange(4.0), np.array([1, 0])), "one length"),
    ("auc: empty", lambda: pairs.roc_auc(np.zeros(0), np.zeros(0)), "non-empty"),
    ("auc: nan", lambda: pairs.roc_auc(np.array([np.nan, 1.0]), np.array([1, 0])), "finite"),
    ("auc: truth", lambda: pairs.roc_auc(np.arange(2.0), np.array([2, 0])), "booleans"),
    ("pairs: one class", lambda: pairs.balanced_pairs(np.zeros(5), 10, np.random.default_rng(0)), "2 classes"),
    ("verification: 1-D", lambda: pairs.verification(np.zeros(5), np.zeros(5)), "non-empty \\(n, d\\)"),
    ("verification: labels", lambda: pairs.verification(GOOD_X, GOOD_Y[1:]), "labels of shape"),
    ("verification: nan", lambda: pairs.verification(nan_x(), GOOD_Y), "NaN or infinite"),
    ("verification: distance", lambda: pairs.verification(GOOD_X, GOOD_Y, distance="l2"), "unknown distance"),
    ("verification: one class", lambda: pairs.verification(*ONE_CLASS), "at least 2 classes"),
    # Three items per class split 2 / 1: the test part has no class that can give a same pair.
    ("verification: no same pairs", lambda: pairs.verification(GOOD_X[:15], np.repeat(np.arange(5), 3)), "test part"),
    ("verification: fraction", lambda: pairs.verification(GOOD_X, GOOD_Y, validation_fraction=1.0), "fraction"),
    ("verification: fixed", lambda: pairs.verification(GOOD_X, GOOD_Y, fixed_threshold=2.0), "cosine similarity"),
    ("episodes: 1-D", lambda: pairs.n_way_k_shot(np.zeros(5), np.zeros(5)), "non-empty \\(n, d\\)"),
    ("episodes: labels", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y[2:]), "labels of shape"),
    ("episodes: nan", lambda: pairs.n_way_k_shot(nan_x(), GOOD_Y), "NaN or infinite"),
    ("episodes: distance", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y, distance="dot"), "unknown distance"),
    ("episodes: classifier", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y, classifier="svm"), "unknown classifier"),
    ("episodes: too few classes", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y, n_way=6), "6-way needs 6 classes"),
    ("episodes: too few items", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y, k_shot=6), "at least 7 items"),
    ("episodes: restriction", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y, classes=[0, 1]), "found 2"),
    ("episodes: unknown class", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y, classes=[0, 42]), "not among the labels"),
    ("episodes: one episode", lambda: pairs.n_way_k_shot(GOOD_X, GOOD_Y, n_episodes=1), "n_episodes"),
    ("episodes: one class", lambda: pairs.n_way_k_shot(*ONE_CLASS), "found 1"),
    ("chance: zero", lambda: pairs.chance_level(0), "n_way"),
]


@pytest.mark.parametrize("call,match", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_raise_one_line(call, match):
    with pytest.raises(HarnessError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)


# --- the seed-004 project's "mean few-shot accuracy" and its always-"different" baseline -------------------------

def naive_original_few_shot(x: np.ndarray, labels: np.ndarray, n_queries: int, threshold: float,
                            seed: int) -> tuple[float, float]:
    """The docstring's procedure as a plain loop over the same random draws."""
    rng = np.random.default_rng(seed)
    judged = correct = different = 0
    running, baseline = [], []
    for label in sorted(set(labels.tolist())):
        support = rng.choice(np.flatnonzero(labels == label))
        for q in rng.integers(0, len(labels), n_queries).tolist():
            a, b = x[q], x[support]
            cosine = float(a @ b) / math.sqrt(float(a @ a) * float(b @ b))
            same = labels[q] == labels[support]
            correct += (cosine > threshold) == same
            different += not same
            judged += 1
        running.append(correct / judged)
        baseline.append(different / judged)
    return sum(running) / len(running), sum(baseline) / len(baseline)


def test_original_few_shot_equals_a_hand_loop():
    # Unit vectors with known cosines: a.b = 0.6 and c.d = 0.6 (> 0.5, "same"), a.c = b.d = 0, a.d = -0.8, b.c = 0.8.
    a, b, c, d = [1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.8, 0.6]
    x = np.array([b, a, d, c, a, b])
    labels = np.array([1, 0, 1, 0, 0, 1])  # unsorted: supports are still taken in ascending class order
    for seed in range(5):
        got = pairs.original_few_shot(x, labels, n_queries=7, threshold=0.5, seed=seed)
        accuracy, baseline = naive_original_few_shot(x, labels, 7, 0.5, seed)
        assert got["original_few_shot_accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert got["always_different_accuracy"] == pytest.approx(baseline, abs=1e-12)
    # Different pairs a-b and c-d are judged "same" here, so the score is not trivially perfect.
    assert pairs.original_few_shot(x, labels, n_queries=200, threshold=0.5)["original_few_shot_accuracy"] < 0.9


def test_original_few_shot_by_hand_for_one_draw():
    """Two classes of one item each: the supports are forced, and only the query draws remain."""
    x, labels = np.array([[1.0, 0.0], [0.6, 0.8]]), np.array([0, 1])
    rng = np.random.default_rng(0)
    rng.choice(np.array([0]))  # the forced support still takes its draw
    first = rng.integers(0, 2, 4)
    rng.choice(np.array([1]))
    second = rng.integers(0, 2, 4)
    # cos(item 0, item 1) = 0.6: at threshold 0.7 every judgement is right, at 0.5 every "different" pair is wrong.
    assert pairs.original_few_shot(x, labels, n_queries=4, threshold=0.7)["original_few_shot_accuracy"] == 1.0
    wrong_1, wrong_2 = int((first == 1).sum()), int((second == 0).sum())
    expected = ((4 - wrong_1) / 4 + (8 - wrong_1 - wrong_2) / 8) / 2
    got = pairs.original_few_shot(x, labels, n_queries=4, threshold=0.5)
    assert got["original_few_shot_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert got["always_different_accuracy"] == pytest.approx((wrong_1 / 4 + (wrong_1 + wrong_2) / 8) / 2, abs=1e-12)


def test_always_different_scores_about_one_minus_one_over_c():
    labels = np.repeat(np.arange(10), 100)  # balanced classes; the embeddings do not matter to the baseline
    x = np.random.default_rng(5).standard_normal((len(labels), 8))
    got = pairs.original_few_shot(x, labels, n_queries=2000, seed=1)
    assert got["always_different_accuracy"] == pytest.approx(0.9, abs=0.02)


def test_original_few_shot_is_perfect_on_one_hot_embeddings():
    labels = np.repeat(np.arange(5), 8)
    got = pairs.original_few_shot(np.eye(5)[labels], labels, n_queries=300, threshold=0.2, seed=2)
    assert got["original_few_shot_accuracy"] == 1.0
    assert got["always_different_accuracy"] == pytest.approx(0.8, abs=0.05)


def test_original_few_shot_refuses_a_bad_query_count():
    with pytest.raises(HarnessError, match="few_shot_queries"):
        pairs.original_few_shot(GOOD_X, GOOD_Y, n_queries=0)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_episodes_read_from_a_distance_table_equal_episodes_that_compute_their_own(distance, monkeypatch):
    """With few items and many episodes the episodes read one table of every pairwise distance among the
    eligible items (each entry computed by the same row-wise operations): every number stays bit for bit."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(240, 96)) * 3 + 1, np.repeat(np.arange(12), 20)
    options = dict(n_way=6, k_shot=1, n_queries=10, n_episodes=200, distance=distance, seed=9, classes=range(2, 12))
    built, build = [], pairs.distance_table
    monkeypatch.setattr(pairs, "distance_table", lambda *args: built.append(args[0].shape) or build(*args))
    table = pairs.n_way_k_shot(x, y, **options)
    assert built == [(240, 96)]  # 200 items a side: fewer distances than 200 episodes of 60 x 6 would compute
    monkeypatch.setattr(pairs, "TABLE_ITEMS", 0)  # no table: each episode computes its distances
    assert pairs.n_way_k_shot(x, y, **options) == table and len(built) == 1
