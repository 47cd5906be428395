"""The original's protocol beside ours, claim by claim: the number the original reported, ours run (or read) the
original's way, ours corrected, and corrected - faithful paired by seed with its 95% t-interval. A pure function of
the results frame, the study's `report.protocols` and the original's CSV; no files, no LaTeX beyond cell texts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness import aggregate
from harness.errors import HarnessError
from harness.render import baselines
from harness.render.axes import label_text
from harness.report import ProtocolCell, ProtocolClaim, ProtocolSpec, where_for
from harness.render.tables import summary_text
from harness import units

Order = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Row:
    claim: str
    labels: list[str]  # the row's label on each of the spec's row axes
    theirs: str
    faithful: str
    corrected: str
    difference: str  # corrected - faithful in percentage points, with its 95% interval
    sign: int  # +1 / -1: that interval is above / below 0; 0: it contains 0 (or there is none)
    n: int  # seeds paired


def cell_values(frame: pd.DataFrame, cell: ProtocolCell, claim: ProtocolClaim, profile: str,
                names: Mapping[str, str], order: Order, epochs: pd.Series | None = None) -> pd.DataFrame:
    """The cell's rows of its metric at its epoch: one (run, epoch) row per run. `epochs` (seed -> epoch) is the
    faithful cell's reading, for the rule epoch: faithful."""
    return aggregate.cell_rows(frame, where_for(cell, profile), cell.metric or claim.metric, cell.epoch, cell.select,
                               order, faithful_epochs=epochs)


def difference_text(interval: aggregate.Interval) -> tuple[str, int]:
    """'$+1.23$ [$-0.40$, $+2.86$]' in percentage points, and the sign of the interval (0 when it contains 0)."""
    if interval.n == 0 or not np.isfinite(interval.mean):
        return "--", 0
    if interval.n < 2 or not np.isfinite(interval.half):
        return f"${units.fixed(interval.mean, sign=True)}$", 0
    sign = 1 if interval.low > 0 else -1 if interval.high < 0 else 0
    return (f"${units.fixed(interval.mean, sign=True)}$ [${units.fixed(interval.low, sign=True)}$, "
            f"${units.fixed(interval.high, sign=True)}$]", sign)


def their_number(original: pd.DataFrame, spec: ProtocolSpec, claim: ProtocolClaim, labels: Sequence[Any]) -> str:
    if claim.theirs is None:
        return "--"
    if claim.theirs not in original:
        raise HarnessError(f"report.protocols: {spec.file} has no column '{claim.theirs}'")
    rows = original
    for axis, label in zip(spec.rows, labels):
        column = spec.their_rows.get(axis)
        if column is None:
            continue
        if column not in rows:
            raise HarnessError(f"report.protocols: {spec.file} has no column '{column}'")
        theirs = rows[column].map(lambda v: spec.row_map.get(v, spec.row_map.get(str(v), v)))
        rows = rows[theirs.map(label_text) == label_text(label)]  # 10 in their CSV, 10.0 in a frame with gaps
    values = rows[claim.theirs].dropna()
    if values.empty:
        return "--"
    return units.fixed(float(values.iloc[0]), 1.0 if spec.percent_in_file else units.PERCENT)


def row_labels(data: pd.DataFrame, axes: Sequence[str], order: Order) -> list[tuple[Any, ...]]:
    """The faithful runs' rows: each combination of labels on `axes`, in the matrix's declared order."""
    if any(axis not in data for axis in axes):
        return []
    found = {tuple(r) for r in data[list(axes)].dropna().drop_duplicates().itertuples(index=False)}
    return sorted(found, key=lambda labels: aggregate.declared_rank(labels, order, axes))


def protocol_rows(frame: pd.DataFrame, spec: ProtocolSpec, original: pd.DataFrame, order: Order, profile: str,
                  names: Mapping[str, str] | None = None) -> list[Row]:
    """Every claim's rows (trained runs only: no baselines)."""
    frame, names = baselines.trained_only(frame), names or {}
    for column, value in spec.their_where.items():
        if column not in original:
            raise HarnessError(f"report.protocols.their_where: {spec.file} has no column '{column}'")
        original = original[original[column].astype(str) == str(value)]
    rows = []
    for claim in spec.claims:
        faithful_all = cell_values(frame, claim.faithful, claim, profile, names, order)
        for labels in row_labels(faithful_all, spec.rows, order):
            faithful = aggregate.in_row(faithful_all, spec.rows, labels)
            epochs = faithful.groupby("seed")["epoch"].min()
            corrected = cell_values(aggregate.in_row(frame, spec.rows, labels), claim.corrected, claim, profile, names, order,
                                    epochs)
            f_values, c_values = aggregate.seed_values(faithful), aggregate.seed_values(corrected)
            difference = aggregate.paired_difference(c_values.to_dict(), f_values.to_dict())
            text, sign = difference_text(difference)
            rows.append(Row(claim.label, [label_text(v) for v in labels],
                            their_number(original, spec, claim, labels),
                            summary_text(f_values, units.PERCENT, spec.spread), summary_text(c_values, units.PERCENT), text, sign,
                            difference.n))
    return rows
