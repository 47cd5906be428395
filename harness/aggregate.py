"""Records -> pandas: one row per (run, evaluated epoch, metric), then mean, std, n and a 95% interval over seeds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

METRIC_COLUMNS = ("run_id", "seed", "epoch", "metric", "value")


def long_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Finished runs only; axis labels become columns (one per matrix axis)."""
    rows = []
    for record in records:
        if record["status"] != "ok":
            continue
        for evaluation in record["metrics"]:
            for metric, value in evaluation.items():
                if metric == "epoch":
                    continue
                rows.append({**record["axes"], "run_id": record["run_id"], "seed": record["seed"],
                             "epoch": evaluation["epoch"], "metric": metric, "value": float(value)})
    return pd.DataFrame(rows)


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
