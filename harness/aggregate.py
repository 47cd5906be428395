"""Records -> pandas: one row per (run, evaluated epoch, metric); the runs a table shows; mean, std, n, 95% interval;
a grid cell chosen on a metric (ties broken by declared order); the paired difference by seed to a reference."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.catalog import BASELINE_AXIS
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.report import SelectSpec
    from harness.store import RunRecord


def long_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """Finished runs only; axis labels become columns (one per matrix axis; NaN for a run outside that axis)."""
    rows = [
        {**record.axes, "run_id": record.run_id, "seed": record.seed, "epoch": evaluation["epoch"],
         "metric": metric, "value": float(value)}
        for record in records if record.status == "ok"
        for evaluation in record.metrics
        for metric, value in evaluation.items() if metric != "epoch"
    ]
    # No finished run still has the columns, so that filtering an empty frame is an empty result, not a KeyError.
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "seed", "epoch", "metric", "value"])


def label_text(value: Any) -> str:
    """An axis label as the YAML wrote it: pandas turns integer labels of a column with gaps into floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):  # a `where` that accepts several labels
        return " or ".join(label_text(v) for v in value)
    return str(value)


def matches(value: Any, wanted: Any) -> bool:
    """Whether one run's label satisfies a `where` entry: a list means any of its labels."""
    return value in wanted if isinstance(wanted, list) else value == wanted


def restrict(frame: pd.DataFrame, metrics: Sequence[str], where: Mapping[str, Any] | None = None,
             epoch: str = "all") -> pd.DataFrame:
    """Rows of some metrics, of runs matching `where`; with epoch "last" only each run's last evaluated epoch, with
    "best:<metric>" only the epoch at which that metric was highest (the earliest on a tie, as a checkpoint rule
    keeps it; runs without it drop out). "best:val_..." is model selection on a validation split; "best:" a test
    metric is what an original that kept its best test epoch reported.

    A run without one of `where`'s axes is kept: it is outside that grid (a baseline beside it), not excluded by it.
    """
    data = frame[frame["metric"].isin(metrics)]
    for axis, wanted in (where or {}).items():
        if axis in data:
            data = data[data[axis].isna() | data[axis].isin(wanted if isinstance(wanted, list) else [wanted])]
    if epoch == "last":
        data = data[data["epoch"] == data.groupby("run_id")["epoch"].transform("max")]
    elif epoch.startswith("best:"):
        scores = frame[frame["metric"] == epoch.removeprefix("best:")]
        best = scores.sort_values(["run_id", "value", "epoch"], ascending=[True, False, True])
        chosen = best.drop_duplicates("run_id").set_index("run_id")["epoch"]
        data = data[data["run_id"].map(chosen) == data["epoch"]]
    return data


@dataclass(frozen=True)
class Choice:
    """The grid cell chosen by a metric: its label on each axis and its score (mean over seeds, last epoch); the
    other cells with the same score (`tied`), which lost to it by the matrix's declared order."""

    axes: tuple[str, ...]
    cell: tuple[Any, ...]
    by: str
    score: float
    tied: tuple[tuple[Any, ...], ...] = ()


TIE_TOLERANCE = 1e-9  # scores closer than this (on the 0-1 scale) are the same score: float noise, not a difference


def declared_rank(labels: Sequence[Any], order: Mapping[str, Sequence[Any]], axes: Sequence[str]) -> tuple:
    """Sort key of a grid cell: each axis's label by its place in the matrix's declared order (labels it does not
    declare after those, by their text)."""
    key = []
    for axis, label in zip(axes, labels):
        declared = list(order.get(axis) or [])
        key.append((declared.index(label), "") if label in declared else (len(declared), str(label)))
    return tuple(key)


def best_cell(frame: pd.DataFrame, axes: Sequence[str], by: str,
              order: Mapping[str, Sequence[Any]] | None = None) -> Choice:
    """The cell over `axes` with the highest mean of `by` at each run's last epoch. A tie (means within
    TIE_TOLERANCE of the best) goes to the cell first in the matrix's declared order (axis by axis); the cells it
    beat that way are reported in `tied`.

    `by` should be a validation metric: choosing on the test split would flatter the chosen cell.
    """
    scores = restrict(frame, [by], epoch="last").dropna(subset=list(axes))
    if scores.empty:
        raise HarnessError(f"no run has {by} to choose the best {', '.join(axes)} by")
    means = scores.groupby(list(axes))["value"].mean()
    cells = [key if isinstance(key, tuple) else (key,) for key in means.index]
    best = float(means.max())
    top = sorted((cell for cell, mean in zip(cells, means) if mean >= best - TIE_TOLERANCE),
                 key=lambda cell: declared_rank(cell, order or {}, axes))
    return Choice(tuple(axes), top[0], by, float(means.iloc[cells.index(top[0])]), tuple(top[1:]))


def keep_cell(data: pd.DataFrame, choice: Choice) -> pd.DataFrame:
    """The rows of the chosen cell, and of runs outside the grid (without its axes: a baseline beside it)."""
    outside = data[choice.axes[0]].isna()
    inside = pd.Series(True, index=data.index)
    for axis, label in zip(choice.axes, choice.cell):
        inside &= data[axis] == label
    return data[outside | inside]


def select(frame: pd.DataFrame, data: pd.DataFrame, select: SelectSpec | None,
           order: Mapping[str, Sequence[Any]] | None = None) -> tuple[pd.DataFrame, list[tuple[Any, Choice]]]:
    """`data` narrowed to the grid cell that `select` (a report's SelectSpec) chooses on the whole `frame`, and the
    choices made: [(None, choice)], or with `select.per` one (label, choice) per label of that axis that was tuned.
    Runs outside the grid (baselines) stay; a label of `per` whose runs have none of the axes stays whole."""
    if select is None:
        return data, []
    if select.per is None:
        choice = best_cell(frame, select.axes, select.by, order)
        return keep_cell(data, choice), [(None, choice)]
    if select.per not in frame:
        raise HarnessError(f"select.per: no run has the axis '{select.per}'")
    parts, choices = [data[data[select.per].isna()]], []
    labels = sorted(frame[select.per].dropna().unique(), key=lambda v: declared_rank((v,), order or {}, [select.per]))
    for label in labels:
        group, rows = frame[frame[select.per] == label], data[data[select.per] == label]
        axes = [axis for axis in select.axes if axis in group and group[axis].notna().any()]
        if not axes:  # nothing was tuned for this label: its runs stay as they are
            parts.append(rows)
            continue
        choice = best_cell(group, axes, select.by, order)
        parts.append(keep_cell(rows, choice))
        choices.append((label, choice))
    return pd.concat(parts), choices


def strictly(frame: pd.DataFrame, where: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of runs that carry every axis of `where` with a wanted label (a list: any of them); null (alone or in
    the list): runs without that axis. Stricter than a table's `where`, which keeps runs without the axis: here `where` names a protocol's
    runs, and a run of another sweep must not count as one."""
    for axis, wanted in where.items():
        present = frame[axis].notna() if axis in frame else pd.Series(False, index=frame.index)
        if wanted is None:
            frame = frame[~present]
            continue
        labels = wanted if isinstance(wanted, list) else [wanted]  # a null among them: or without the axis
        keep = present & frame[axis].isin([v for v in labels if v is not None]) if axis in frame else present
        frame = frame[keep | ~present] if None in labels else frame[keep]
    return frame


def in_row(frame: pd.DataFrame, axes: Sequence[str], labels: Sequence[Any]) -> pd.DataFrame:
    """Rows of runs with these labels; a run without one of the axes matches any of its labels (a corrected run
    has no `budget`: it is compared at every budget)."""
    for axis, label in zip(axes, labels):
        if axis in frame:
            frame = frame[frame[axis].isna() | (frame[axis] == label)]
    return frame


def cell_rows(frame: pd.DataFrame, where: Mapping[str, Any], metric: str, epoch: str | int = "last",
              select_by: SelectSpec | None = None, order: Mapping[str, Sequence[Any]] | None = None, *,
              trained_only: bool = False, faithful_epochs: pd.Series | None = None) -> pd.DataFrame:
    """The rows one cell of a claim or of an original-versus-ours table reads: runs carrying every axis of `where`
    (strictly), without baselines when `trained_only`, its metric at its epoch rule ("last", "best:<metric>", an
    evaluated epoch, or "faithful": each seed's epoch in `faithful_epochs`), narrowed by `select_by`."""
    runs = strictly(frame, where)
    if trained_only and BASELINE_AXIS in runs:
        runs = runs[runs[BASELINE_AXIS].isna()]
    if isinstance(epoch, int) or epoch == "faithful":
        data = restrict(runs, [metric])
        wanted = epoch if isinstance(epoch, int) else data["seed"].map(
            faithful_epochs if faithful_epochs is not None else {})
        data = data[data["epoch"] == wanted]
    else:
        data = restrict(runs, [metric], epoch=epoch)
    return select(runs, data, select_by, order)[0]


def summarise(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """mean, std (ddof=1; NaN for one seed), n and the half-width of a t-based 95% interval, per group."""
    if frame.empty:
        return pd.DataFrame(columns=[*by, "mean", "std", "n", "ci95"])
    grouped = frame.groupby(list(by), sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    half = stats.t.ppf(0.975, np.maximum(out["n"] - 1, 1)) * out["std"] / np.sqrt(out["n"])
    out["ci95"] = half.where(out["n"] > 1)
    return out


def clearly_best(means: Sequence[float], stds: Sequence[float], ns: Sequence[int]) -> int | None:
    """Index of the best mean when it is clearly best: at least two seeds each, and the low end of its 95 %
    t-interval above the high end of every other entry's (the one convention for uncertainty the document
    uses). Otherwise None (no bold where the data cannot tell)."""
    finite = [i for i, m in enumerate(means) if np.isfinite(m)]
    if len(finite) < 2 or any(ns[i] < 2 for i in finite):
        return None

    def half(i: int) -> float:
        return float(stats.t.ppf(0.975, ns[i] - 1) * stds[i] / np.sqrt(ns[i]))

    best = max(finite, key=lambda i: means[i])
    lower = means[best] - half(best)
    if all(means[i] + half(i) < lower for i in finite if i != best):
        return best
    return None


def t_band(values: Sequence[float]) -> tuple[float, float]:
    """The 95 % t-interval of a set of seeds' values as (low, high): the band figures draw (seaborn's errorbar)."""
    found = interval(values)
    half = found.half if np.isfinite(found.half) else 0.0
    return found.mean - half, found.mean + half


def seed_values(data: pd.DataFrame) -> pd.Series:
    """One value per seed, indexed by seed (the mean of that seed's rows): seeds, not rows, are the independent
    repetitions an interval is taken over."""
    return data.groupby("seed")["value"].mean()


@dataclass(frozen=True)
class Interval:
    """A mean with the half-width of its two-sided t-interval (NaN with fewer than two values)."""

    mean: float
    half: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    @property
    def sign(self) -> int:
        """+1 when the whole interval lies above 0, -1 below, 0 when it includes 0 or there is none (n < 2)."""
        if self.n < 2 or not np.isfinite(self.half):
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def interval(values: Iterable[float], level: float = 0.95) -> Interval:
    """Mean and t-interval half-width (t quantile with n - 1 degrees of freedom x s.d. / sqrt(n)) of the finite
    values."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Interval(float("nan"), float("nan"), 0)
    if n < 2:
        return Interval(float(x.mean()), float("nan"), 1)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return Interval(float(x.mean()), float(half), n)


def paired_difference(values: Mapping[Any, float], reference: Mapping[Any, float],
                      level: float = 0.95) -> Interval:
    """values - reference, paired by seed (the keys): only seeds present (and finite) in both count; the mean
    difference and its t-interval. Its `sign` says whether the interval excludes 0, and on which side."""
    seeds = sorted(s for s in set(values) & set(reference)
                   if np.isfinite(values[s]) and np.isfinite(reference[s]))
    return interval([values[s] - reference[s] for s in seeds], level)


# -- tests over a family of claims (issue 25): a paired t-test's p-value, equivalence by two one-sided tests, and
# Holm's step-down adjustment. Pure functions of the per-seed differences; nothing reads them yet.

def paired_differences(values: Mapping[Any, float], reference: Mapping[Any, float]) -> np.ndarray:
    """values - reference for each seed present and finite in both (the pairing paired_difference uses)."""
    seeds = sorted(s for s in set(values) & set(reference)
                   if np.isfinite(values[s]) and np.isfinite(reference[s]))
    return np.asarray([values[s] - reference[s] for s in seeds], dtype=float)


def t_test_p(differences: Sequence[float], against: float = 0.0, side: str = "two-sided") -> float:
    """The p-value of a one-sample t-test of the mean difference against `against` ("two-sided", "greater": the
    mean is above it, "less": below it); NaN with fewer than two values or no spread."""
    x = np.asarray(differences, dtype=float)
    if len(x) < 2 or not np.isfinite(x).all():
        return float("nan")
    sd = x.std(ddof=1)
    if sd == 0:
        return float("nan")
    t = (x.mean() - against) / (sd / np.sqrt(len(x)))
    df = len(x) - 1
    if side == "greater":
        return float(stats.t.sf(t, df))
    if side == "less":
        return float(stats.t.cdf(t, df))
    return float(2 * stats.t.sf(abs(t), df))


def tost_p(differences: Sequence[float], margin: float) -> float:
    """Equivalence within +-margin by two one-sided t-tests: the larger of p(mean > -margin) and p(mean < margin).
    Below alpha, the difference is shown to be smaller than the margin (at level alpha, the (1 - 2 alpha)
    interval lies inside it)."""
    if not margin > 0:
        raise HarnessError(f"an equivalence margin must be positive, got {margin}")
    return max(t_test_p(differences, -margin, "greater"), t_test_p(differences, margin, "less"))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family's p-values (same order as given; NaN stays NaN and is not counted):
    the k-th smallest of m becomes max over j <= k of (m - j + 1) p_(j), capped at 1. Rejecting where the adjusted
    value is below alpha controls the family-wise error rate at alpha."""
    p = np.asarray(p_values, dtype=float)
    known = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), np.nan)
    running = 0.0
    for rank, index in enumerate(known[np.argsort(p[known], kind="stable")]):
        running = max(running, min(1.0, (len(known) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
