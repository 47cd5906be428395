"""Pair-based metrics: triplet accuracy, verification with a validation-chosen threshold, ROC AUC, n-way k-shot."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy.stats import rankdata

from harness.catalog import DISTANCES
from harness.errors import HarnessError
from harness.evaluate.checks import check_embeddings as _check

CLASSIFIERS = ("nearest", "mean")


def as_float64(name: str, x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x as float64, labels as an array) after the shared checks (harness.evaluate.checks), which name `name`."""
    x, labels = np.asarray(x), np.asarray(labels)
    _check(name, x, labels)
    return x.astype(np.float64), labels


def check_distance(x: np.ndarray, distance: str, name: str) -> None:
    if distance not in DISTANCES:
        raise HarnessError(f"{name}: unknown distance '{distance}'; known: {', '.join(DISTANCES)}")
    # 1 - cos has no value for a zero vector; refusing beats a NaN that would count as "not closer".
    # (Compared with zero, not by norm: the norm of a 1e-200 row underflows to 0.)
    if distance == "cosine" and not (x != 0).any(axis=1).all():
        raise HarnessError(f"{name}: cosine distance is undefined for an all-zero embedding")


# The centre is rounded to this many bits below the spread of the points (as in retrieval): subtracting it is then
# exact for points on a grid, which float32 embeddings plus a constant are, so such a shift changes no bit after it.
CENTRE_BITS = 12


def _row_scaled(x: np.ndarray) -> np.ndarray:
    """Each row (last axis) times the power of two that brings its largest |coordinate| into [0.5, 1): exact, and
    its squares then neither overflow (1e200) nor all underflow (1e-200)."""
    top = np.abs(x).max(axis=-1, keepdims=True)
    return np.ldexp(x, -np.frexp(top)[1])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows (last axis) divided by their L2 norm, for any finite scale; all-zero rows stay zero."""
    x = _row_scaled(np.asarray(x, dtype=np.float64))
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def row_norms(x: np.ndarray) -> np.ndarray:
    """L2 norms along the last axis without overflow or underflow of the squares (equal to np.linalg.norm's
    wherever that is finite and nonzero: the power-of-two scaling commutes with every rounding)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.frexp(np.abs(x).max(axis=-1))[1]
    norm = np.linalg.norm(np.ldexp(x, -e[..., None]), axis=-1)
    with np.errstate(over="ignore"):
        return np.ldexp(norm, e)


def centred(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(x minus its mean, times 2**-e, and e): Euclidean distances of the result are those of x times 2**-e.

    Coordinates end in [-1, 1] around 0, so a large common offset (x + 1e4) or magnitude (x * 1e20, x * 1e-30)
    neither overflows nor cancels in what follows; the shift and the power of two change no comparison.
    """
    x = np.asarray(x, dtype=np.float64)
    pre = int(np.frexp(np.abs(x).max())[1])
    x = np.ldexp(x, -pre)  # so that the sum in the mean cannot overflow
    mean = x.mean(axis=0)
    spread = float(np.maximum(x.max(axis=0) - mean, mean - x.min(axis=0)).max())
    if spread > 0:
        grid = np.ldexp(1.0, int(np.frexp(spread)[1]) - CENTRE_BITS)
        mean = np.round(mean / grid) * grid
    x = x - mean
    post = int(np.frexp(np.abs(x).max())[1])
    return np.ldexp(x, -post), pre + post


def prepared(x: np.ndarray, distance: str) -> tuple[np.ndarray, int]:
    """(embeddings ready for pair_distance, e): unit rows for cosine (e = 0), centred() for euclidean, whose
    distances are the original ones times 2**-e."""
    return (unit_rows(x), 0) if distance == "cosine" else centred(x)


def _positive_int(value: int, what: str, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise HarnessError(f"{name}: {what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def pair_distance(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """Row-wise distance between a[i] and b[i]: L2, or 1 - cosine similarity; smaller = more similar.

    1 - cos is computed as |a/|a| - b/|b||^2 / 2 (equal for unit vectors): the form 1 - a.b / (|a| |b|) cancels,
    and for near-duplicates (cos within 1e-12 of 1) leaves only rounding noise.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if distance == "euclidean":
        return row_norms(a - b)
    if distance == "cosine":
        return row_norms(unit_rows(a) - unit_rows(b)) ** 2 / 2
    raise HarnessError(f"unknown distance '{distance}'; known: {', '.join(DISTANCES)}")


class _Groups:
    """Items grouped by class, so that a partner of the same / another class is one vectorised draw."""

    def __init__(self, labels: np.ndarray) -> None:
        self.classes, self.codes, self.sizes = np.unique(labels, return_inverse=True, return_counts=True)
        self.codes = self.codes.reshape(-1)
        self.order = np.argsort(self.codes, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.rank = np.empty(len(labels), dtype=np.int64)  # position of each item inside its class
        self.rank[self.order] = np.arange(len(labels)) - self.starts[self.codes[self.order]]

    def same(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly drawn other item of each item's class (the class must have >= 2 members)."""
        c = self.codes[items]
        m = self.sizes[c]
        offset = rng.integers(0, m - 1)
        return self.order[self.starts[c] + (self.rank[items] + 1 + offset) % m]

    def other(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly drawn item of any other class: skip over the item's own class block in sorted order."""
        c = self.codes[items]
        m = self.sizes[c]
        u = rng.integers(0, len(self.codes) - m)
        return self.order[np.where(u < self.starts[c], u, u + m)]


def _with_partner(groups: "_Groups", what: str) -> np.ndarray:
    """Items whose class has another member (possible anchors of a same-class pair); errors name `what`."""
    if len(groups.classes) < 2:
        raise HarnessError(f"{what} need at least 2 classes, got {len(groups.classes)}")
    eligible = np.flatnonzero(groups.sizes[groups.codes] >= 2)
    if len(eligible) == 0:
        raise HarnessError(f"{what} need a class with at least 2 items; every class has a single item")
    return eligible


def sample_triplets(labels: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n (anchor, positive, negative) index triplets; anchors uniform over items whose class has >= 2 members."""
    labels = np.asarray(labels)
    groups = _Groups(labels)
    eligible = _with_partner(groups, "triplets")
    anchors = eligible[rng.integers(0, len(eligible), n)]
    return anchors, groups.same(anchors, rng), groups.other(anchors, rng)


def triplet_accuracy(x: np.ndarray, labels: np.ndarray, *, n_triplets: int = 10000, seed: int = 0,
                     distance: str = "euclidean") -> float:
    """Fraction of sampled triplets with d(anchor, positive) < d(anchor, negative); a tie counts as wrong."""
    x, labels = as_float64("triplet_accuracy", x, labels)
    check_distance(x, distance, "triplet_accuracy")
    n_triplets = _positive_int(n_triplets, "n_triplets", "triplet_accuracy")
    x, _ = prepared(x, distance)
    a, p, n = sample_triplets(labels, n_triplets, np.random.default_rng(seed))
    return float((pair_distance(x[a], x[p], distance) < pair_distance(x[a], x[n], distance)).mean())


def roc_auc(scores_same: np.ndarray, is_same: np.ndarray) -> float:
    """ROC AUC of pair distances (`scores_same`: smaller = more likely "same") against the truth `is_same`.

    Mann-Whitney U with average ranks, so a tie between a same and a different pair counts one half;
    equals sklearn.metrics.roc_auc_score(is_same, -scores_same).
    """
    d, same = np.asarray(scores_same), np.asarray(is_same)
    if d.ndim != 1 or d.shape != same.shape or d.size == 0:
        raise HarnessError(f"roc_auc: expected two non-empty 1-D arrays of one length, got {d.shape} and {same.shape}")
    if not np.issubdtype(d.dtype, np.number) or not np.isfinite(d).all():
        raise HarnessError("roc_auc: distances must be finite numbers")
    if not np.isin(same, (0, 1)).all():
        raise HarnessError("roc_auc: is_same must hold only booleans (or 0/1)")
    same = same.astype(bool)
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if n_same == 0 or n_diff == 0:
        raise HarnessError(f"roc_auc: needs both same and different pairs, got {n_same} same and {n_diff} different")
    ranks = rankdata(-d.astype(np.float64), method="average")
    u = ranks[same].sum() - n_same * (n_same + 1) / 2
    return float(u / (n_same * n_diff))


def balanced_pairs(labels: np.ndarray, n_pairs: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, same): n_pairs // 2 same-class pairs with i != j, then the rest different-class pairs.

    Same pairs start from an item drawn uniformly among those whose class has >= 2 members; different
    pairs start from any item. The partner is uniform among the allowed items.
    """
    labels = np.asarray(labels)
    n_pairs = _positive_int(n_pairs, "n_pairs", "balanced_pairs", minimum=2)
    groups = _Groups(labels)
    eligible = _with_partner(groups, "balanced pairs")
    n_same = n_pairs // 2
    i_same = eligible[rng.integers(0, len(eligible), n_same)]
    j_same = groups.same(i_same, rng)
    i_diff = rng.integers(0, len(labels), n_pairs - n_same)
    j_diff = groups.other(i_diff, rng)
    same = np.concatenate([np.ones(n_same, dtype=bool), np.zeros(n_pairs - n_same, dtype=bool)])
    return np.concatenate([i_same, i_diff]), np.concatenate([j_same, j_diff]), same


def class_members(labels: np.ndarray) -> dict:
    """label -> indices of its items, ascending; one sort instead of a scan of all labels per class."""
    groups = _Groups(np.asarray(labels))
    blocks = np.split(groups.order, np.cumsum(groups.sizes)[:-1])
    return dict(zip(groups.classes.tolist(), blocks))


def stratified_split(labels: np.ndarray, validation_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(validation items, test items): each class shuffled, its first round(fraction * size) items to validation."""
    validation, test = [], []
    for members in class_members(labels).values():
        members = rng.permutation(members)
        # Round half up, not Python's half-to-even, so that the cut moves monotonically with the class size.
        cut = int(np.floor(validation_fraction * len(members) + 0.5))
        validation.append(members[:cut])
        test.append(members[cut:])
    return np.sort(np.concatenate(validation)), np.sort(np.concatenate(test))


def threshold_accuracy(distances: np.ndarray, is_same: np.ndarray, threshold: float) -> float:
    """Accuracy of predicting "same" iff distance <= threshold."""
    return float(((np.asarray(distances) <= threshold) == np.asarray(is_same, dtype=bool)).mean())


def choose_threshold(distances: np.ndarray, is_same: np.ndarray) -> float:
    """The threshold of best accuracy among every midpoint of consecutive distinct distances and the two extremes.

    The extremes are just below the smallest distance (all "different") and the largest (all "same");
    a tie in accuracy goes to the smallest threshold. Midpoints of distinct values only, so that the smallest
    best threshold sits halfway into a gap rather than on the last "same" distance.
    """
    d, same = np.asarray(distances, dtype=np.float64), np.asarray(is_same, dtype=bool)
    s = np.unique(d)
    candidates = np.unique(np.concatenate([[np.nextafter(s[0], -np.inf)], s[:-1] + (s[1:] - s[:-1]) / 2, [s[-1]]]))
    correct_same = np.searchsorted(np.sort(d[same]), candidates, side="right")
    correct_diff = (~same).sum() - np.searchsorted(np.sort(d[~same]), candidates, side="right")
    # argmax returns the first maximum and candidates ascend: the smallest best threshold.
    return float(candidates[np.argmax(correct_same + correct_diff)])


def verification(x: np.ndarray, labels: np.ndarray, *, n_pairs: int = 10000, validation_fraction: float = 0.5,
                 seed: int = 0, distance: str = "euclidean",
                 fixed_threshold: float | None = None) -> dict[str, float]:
    """Same/different verification: threshold chosen on validation pairs, accuracy and ROC AUC on test pairs.

    The items (not the pairs) are split per class into a validation and a test part, and n_pairs balanced
    pairs are drawn inside each part, so no item is shared between the two. The threshold is never chosen
    on test pairs. With `fixed_threshold` t, the same test pairs are also judged as the seed-004 original did,
    "same" iff cosine similarity > t whatever `distance` is (its "binary accuracy", t = 0.2 there), and that
    accuracy is `verification_fixed_accuracy`: the fixed threshold beside the validated one.
    """
    x, labels = as_float64("verification", x, labels)
    check_distance(x, distance, "verification")
    n_pairs = _positive_int(n_pairs, "n_pairs", "verification", minimum=2)
    if not 0 < validation_fraction < 1:
        raise HarnessError(f"verification: validation_fraction must be strictly between 0 and 1, "
                           f"got {validation_fraction}")
    if len(np.unique(labels)) < 2:
        raise HarnessError("verification: needs at least 2 classes, got 1")
    if fixed_threshold is not None and (isinstance(fixed_threshold, bool) or not isinstance(
            fixed_threshold, (int, float)) or not -1 <= fixed_threshold <= 1):
        raise HarnessError(f"verification: fixed_threshold is a cosine similarity in [-1, 1], got {fixed_threshold!r}")
    given, (x, exponent) = x, prepared(x, distance)
    rng = np.random.default_rng(seed)
    parts = stratified_split(labels, validation_fraction, rng)
    scored, drawn = [], []
    for part, name in zip(parts, ("validation", "test")):
        classes, counts = np.unique(labels[part], return_counts=True)
        if len(classes) < 2 or counts.max() < 2:
            raise HarnessError(f"verification: the {name} part ({len(part)} items, {len(classes)} classes) needs "
                               f"2 classes and a class with 2 items; change validation_fraction or add items")
        i, j, same = balanced_pairs(labels[part], n_pairs, rng)
        scored.append((pair_distance(x[part[i]], x[part[j]], distance), same))
        drawn.append((part[i], part[j]))
    (val_d, val_same), (test_d, test_same) = scored
    fixed = {}
    if fixed_threshold is not None:
        test_i, test_j = drawn[1]
        cosine = 1 - pair_distance(given[test_i], given[test_j], "cosine")  # of the embeddings as given
        fixed = {"verification_fixed_accuracy": float(((cosine > fixed_threshold) == test_same).mean())}
    threshold = choose_threshold(val_d, val_same)
    try:  # back to the embeddings' units (a power of two: exact)
        reported = math.ldexp(threshold, exponent)
    except OverflowError:
        raise HarnessError("verification: the distance threshold exceeds the float64 range; "
                           "scale the embeddings down") from None
    return {"verification_accuracy": threshold_accuracy(test_d, test_same, threshold),
            "verification_threshold": reported, "roc_auc": roc_auc(test_d, test_same), **fixed}


def episode_classes(labels: np.ndarray, k_shot: int, classes: Iterable | None = None) -> np.ndarray:
    """The classes an episode may draw: those with >= k_shot + 1 items, within `classes` when given."""
    present, counts = np.unique(labels, return_counts=True)
    eligible = present[counts >= k_shot + 1]
    if classes is None:
        return eligible
    wanted = np.unique(np.asarray(list(classes)))
    if wanted.size == 0:
        raise HarnessError("n_way_k_shot: `classes` is empty")
    missing = np.setdiff1d(wanted, present)
    if missing.size:
        raise HarnessError(f"n_way_k_shot: classes not among the labels: {missing[:5].tolist()}")
    return np.intersect1d(eligible, wanted)


def sample_episode(members: dict, eligible: np.ndarray, n_way: int, k_shot: int, n_queries: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(support items, their labels, query items, their labels) of one episode; `members` from class_members."""
    chosen = rng.choice(eligible, n_way, replace=False)
    support, query = [], []
    for label in chosen.tolist():
        shuffled = rng.permutation(members[label])
        support.append(shuffled[:k_shot])
        query.append(shuffled[k_shot:k_shot + min(n_queries, len(shuffled) - k_shot)])
    return (np.concatenate(support), np.repeat(chosen, [len(s) for s in support]),
            np.concatenate(query), np.repeat(chosen, [len(q) for q in query]))


def episode_accuracy(support: np.ndarray, support_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray,
                     distance: str, classifier: str) -> float:
    """Fraction of queries whose nearest support ("nearest") or nearest class mean ("mean") has their label.

    A tie goes to the support (or class) that comes first: the episode's class order, which is random.
    """
    if classifier == "mean":
        if distance == "cosine":
            support = unit_rows(support)
        classes, first = np.unique(support_labels, return_index=True)
        keep = np.argsort(first)  # keep the episode's class order, so that ties resolve the same way as "nearest"
        classes = classes[keep]
        support = np.stack([support[support_labels == c].mean(axis=0) for c in classes])
        support_labels = classes
    d = pair_distance(query[:, None, :], support[None, :, :], distance)
    return float((support_labels[d.argmin(axis=1)] == query_labels).mean())


def n_way_k_shot(x: np.ndarray, labels: np.ndarray, *, n_way: int = 5, k_shot: int = 1, n_queries: int = 15,
                 n_episodes: int = 600, seed: int = 0, distance: str = "euclidean", classifier: str = "nearest",
                 classes: Iterable | None = None) -> dict[str, float | int]:
    """Few-shot episodes: mean query accuracy, half-width of its 95% interval (1.96 s / sqrt(n)), episode count.

    Each episode draws n_way classes among those with >= k_shot + 1 items (restricted to `classes` when
    given, e.g. classes unseen in training), k_shot supports per class and up to n_queries queries from the
    rest of the class.
    """
    x, labels = as_float64("n_way_k_shot", x, labels)
    check_distance(x, distance, "n_way_k_shot")
    if classifier not in CLASSIFIERS:
        raise HarnessError(f"n_way_k_shot: unknown classifier '{classifier}'; known: {', '.join(CLASSIFIERS)}")
    n_way = _positive_int(n_way, "n_way", "n_way_k_shot", minimum=2)
    k_shot = _positive_int(k_shot, "k_shot", "n_way_k_shot")
    n_queries = _positive_int(n_queries, "n_queries", "n_way_k_shot")
    # Two episodes at least: the interval needs a sample standard deviation.
    n_episodes = _positive_int(n_episodes, "n_episodes", "n_way_k_shot", minimum=2)
    eligible = episode_classes(labels, k_shot, classes)
    if len(eligible) < n_way:
        raise HarnessError(f"n_way_k_shot: {n_way}-way needs {n_way} classes with at least {k_shot + 1} items, "
                           f"found {len(eligible)}")
    x, _ = prepared(x, distance)
    rng = np.random.default_rng(seed)
    members = class_members(labels)
    accuracies = np.empty(n_episodes)
    # A table of every distance among the eligible items pays when the episodes would compute more distances
    # than it holds (their queries times their supports, at most); the numbers are the same either way.
    pairs = n_episodes * (n_way * n_queries) * (n_way * k_shot)
    items = int(np.isin(labels, eligible).sum())
    table = distance_table(x, labels, eligible, distance) \
        if classifier == "nearest" and items ** 2 <= pairs and items <= TABLE_ITEMS else None
    for e in range(n_episodes):
        s, s_y, q, q_y = sample_episode(members, eligible, n_way, k_shot, n_queries, rng)
        if table is not None:
            distances, row = table
            d = distances[np.ix_(row[q], row[s])]
            accuracies[e] = float((s_y[d.argmin(axis=1)] == q_y).mean())
        else:
            accuracies[e] = episode_accuracy(x[s], s_y, x[q], q_y, distance, classifier)
    return {"episode_accuracy": float(accuracies.mean()),
            "episode_ci95": float(1.96 * accuracies.std(ddof=1) / np.sqrt(n_episodes)),
            "episodes": n_episodes}


TABLE_ITEMS = 8000  # a distance table of at most this many items a side (512 MB); beyond, each episode computes its own
TABLE_BLOCK_BYTES = 2**22  # the differences computed at once while filling it (small: they stay in cache)


def distance_table(x: np.ndarray, labels: np.ndarray, eligible: np.ndarray,
                   distance: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pairwise distance among the items of the eligible classes, and each item's row in it (-1 outside).
    Each entry is pair_distance of one pair, computed by
    the same row-wise operations an episode applies to it, so reading episodes from the table changes no bit;
    it pays when episodes would compute more distances than the table holds (n_way_k_shot decides)."""
    items = np.flatnonzero(np.isin(labels, eligible))
    row = np.full(len(labels), -1, dtype=np.int64)
    row[items] = np.arange(len(items))
    table = np.empty((len(items), len(items)))
    block = max(1, TABLE_BLOCK_BYTES // max(1, len(items) * x.shape[1] * 8))
    others = x[items][None, :, :]
    for start in range(0, len(items), block):
        chunk = items[start:start + block]
        table[start:start + len(chunk)] = pair_distance(x[chunk][:, None, :], others, distance)
    return table, row


def chance_level(n_way: int) -> float:
    """Accuracy of guessing among n_way classes."""
    return 1.0 / _positive_int(n_way, "n_way", "chance_level")


def original_few_shot(x: np.ndarray, labels: np.ndarray, *, n_queries: int = 1000, threshold: float = 0.2,
                      seed: int = 0) -> dict[str, float]:
    """The seed-004 project's "mean few-shot accuracy", computed as its code did, and the baseline that beats it.

    One support item per class (classes in ascending order); for each support, `n_queries` items drawn
    uniformly with replacement from the whole set (the support itself may be drawn) are judged "same" iff
    cosine similarity > threshold (0.2 in the original). After each support, the running accuracy over all
    pairs judged so far is noted; the score is the mean of those running values. The same pairs answered
    "different" every time give `always_different_accuracy`: with C classes only about 1/C of the pairs are
    positive, so that baseline scores about 1 - 1/C. This is a same/different score, not N-way classification.
    """
    x, labels = as_float64("original_few_shot", x, labels)
    n_queries = _positive_int(n_queries, "few_shot_queries", "original_few_shot")
    rng = np.random.default_rng(seed)
    unit = unit_rows(x)  # an all-zero row stays zero: cosine 0 with everything, as the original's eps had it
    judged = correct = always_different = 0
    running, running_baseline = [], []
    for members in class_members(labels).values():
        support = rng.choice(members)
        queries = rng.integers(0, len(labels), n_queries)
        same = labels[queries] == labels[support]
        predicted_same = unit[queries] @ unit[support] > threshold
        judged += n_queries
        correct += int((predicted_same == same).sum())
        always_different += int((~same).sum())
        running.append(correct / judged)
        running_baseline.append(always_different / judged)
    return {"original_few_shot_accuracy": float(np.mean(running)),
            "always_different_accuracy": float(np.mean(running_baseline))}
