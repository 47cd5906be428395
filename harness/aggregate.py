"""Records -> pandas: one row per (run, evaluated epoch, metric); the runs a table shows; mean, std, n, 95% interval."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.store import RunRecord


def long_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """Finished runs only; axis labels become columns (one per matrix axis; NaN for a run outside that axis)."""
    return pd.DataFrame([
        {**record.axes, "run_id": record.run_id, "seed": record.seed, "epoch": evaluation["epoch"],
         "metric": metric, "value": float(value)}
        for record in records if record.status == "ok"
        for evaluation in record.metrics
        for metric, value in evaluation.items() if metric != "epoch"
    ])


def matches(value: Any, wanted: Any) -> bool:
    """Whether one run's label satisfies a `where` entry: a list means any of its labels."""
    return value in wanted if isinstance(wanted, list) else value == wanted


def restrict(frame: pd.DataFrame, metrics: Sequence[str], where: Mapping[str, Any] | None = None,
             epoch: str = "all") -> pd.DataFrame:
    """Rows of some metrics, of runs matching `where`, and with epoch "last" only each run's last evaluated epoch.

    A run without one of `where`'s axes is kept: it is outside that grid (a baseline beside it), not excluded by it.
    """
    data = frame[frame["metric"].isin(metrics)]
    for axis, wanted in (where or {}).items():
        if axis in data:
            data = data[data[axis].isna() | data[axis].isin(wanted if isinstance(wanted, list) else [wanted])]
    if epoch == "last":
        data = data[data["epoch"] == data.groupby("run_id")["epoch"].transform("max")]
    return data


@dataclass(frozen=True)
class Choice:
    """The grid cell chosen by a metric: its label on each axis and its score (mean over seeds, last epoch)."""

    axes: tuple[str, ...]
    cell: tuple[Any, ...]
    by: str
    score: float


def best_cell(frame: pd.DataFrame, axes: Sequence[str], by: str) -> Choice:
    """The cell over `axes` with the highest mean of `by` at each run's last epoch (first such cell on a tie).

    `by` should be a validation metric: choosing on the test split would flatter the chosen cell.
    """
    scores = restrict(frame, [by], epoch="last").dropna(subset=list(axes))
    if scores.empty:
        raise HarnessError(f"no run has {by} to choose the best {', '.join(axes)} by")
    means = scores.groupby(list(axes))["value"].mean()
    cell = means.idxmax() if len(axes) > 1 else (means.idxmax(),)
    return Choice(tuple(axes), tuple(cell), by, float(means.max()))


def keep_cell(data: pd.DataFrame, choice: Choice) -> pd.DataFrame:
    """The rows of the chosen cell, and of runs outside the grid (without its axes: a baseline beside it)."""
    outside = data[choice.axes[0]].isna()
    inside = pd.Series(True, index=data.index)
    for axis, label in zip(choice.axes, choice.cell):
        inside &= data[axis] == label
    return data[outside | inside]


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
    """Index of the best mean when it is clearly best: at least two seeds each, and its mean minus one std
    is above every other entry's mean plus one std. Otherwise None (no bold where the data cannot tell)."""
    finite = [i for i, m in enumerate(means) if np.isfinite(m)]
    if len(finite) < 2 or any(ns[i] < 2 for i in finite):
        return None
    best = max(finite, key=lambda i: means[i])
    lower = means[best] - stds[best]
    if all(means[i] + stds[i] < lower for i in finite if i != best):
        return best
    return None
