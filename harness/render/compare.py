"""What every report kind's `verify` shares: one item as recorded against as rerun (its cells against their recorded
95 % intervals, what a reader would see change), the frames both are drawn from (Rerun), and the runs an item
reads (rows_behind)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness import aggregate, units
from harness.catalog import BASELINE_AXIS
from harness.render import baselines, tables
from harness.render.axes import axis_name, label_text, metric_name
from harness.store import RunRecord

Order = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class CellDiff:
    """One cell of an item: its values per seed as recorded and as rerun."""

    cell: str  # the cell in words ("contrastive / 10")
    recorded: aggregate.Interval
    rerun: aggregate.Interval
    # Allowed beyond the interval: the larger of the tolerance and the tables' printed precision (0.01 points), so
    # that a cell whose seeds agree exactly (a baseline) may still move by what no reader could see.
    tolerance: float

    @property
    def difference(self) -> float:
        return self.rerun.mean - self.recorded.mean

    @property
    def unchanged(self) -> bool:
        """Bit for bit (a NaN half-width, one seed, equals itself here)."""
        a, b = self.recorded, self.rerun
        return a.n == b.n and np.array_equal([a.mean, a.half], [b.mean, b.half], equal_nan=True)

    @property
    def within(self) -> bool:
        """The rerun's mean inside the recorded cell's 95 % interval (one seed: within the tolerance)."""
        if not (np.isfinite(self.recorded.mean) and np.isfinite(self.rerun.mean)):
            return np.isfinite(self.recorded.mean) == np.isfinite(self.rerun.mean)
        if self.recorded.n < 2 or not np.isfinite(self.recorded.half):
            return abs(self.difference) <= self.tolerance
        return self.recorded.low - self.tolerance <= self.rerun.mean <= self.recorded.high + self.tolerance


@dataclass
class ItemCheck:
    """One table, figure or claim: its cells, and what changed that a reader would see."""

    name: str  # study/item, as its caption prints it
    kind: str  # table, figure or claim
    scale: float = 1.0  # units.PERCENT for an item shown in percent
    cells: list[CellDiff] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # a chosen cell or a verdict that moved: a conclusion
    # A mark (arrow or bold) that moved while every cell stayed inside its interval: the paired interval was at
    # the edge of excluding 0, so the mark is not robust to the environment. Reported, not a failed conclusion.
    borderline: list[str] = field(default_factory=list)
    decimals: int = units.DECIMALS  # how many its printed form shows (the slack: the smallest visible change)
    shows: str = ""  # what its cells are, in words: the metric and its unit ("kNN accuracy, percent")
    note: str = ""  # what a reader should know about how it was recomputed (a claim mixing reruns and records)

    @property
    def unit(self) -> str:
        """The unit its differences are printed in: points for an item shown in percent."""
        return "points" if self.scale == units.PERCENT else ""

    @property
    def outside(self) -> list[CellDiff]:
        return [c for c in self.cells if not c.within]

    @property
    def holds(self) -> bool:
        return not self.outside and not self.changes

    @property
    def identical(self) -> bool:
        return all(c.unchanged for c in self.cells) and not self.changes and not self.borderline


def substituted(recorded: Sequence[RunRecord], reruns: Mapping[str, RunRecord]) -> list[RunRecord]:
    """The study's records with each rerun in place of the record it reran."""
    return [reruns.get(r.run_id, r) for r in recorded]


@dataclass(frozen=True)
class Frames:
    """A set of records as the renderer reads them: trained runs, baseline runs, and both."""

    trained: pd.DataFrame
    baselines: pd.DataFrame
    all: pd.DataFrame

    @classmethod
    def of(cls, records: Sequence[RunRecord]) -> Frames:
        trained, base = baselines.split_records(records)
        return cls(aggregate.long_frame(trained), aggregate.long_frame(base), aggregate.long_frame(records))

    def with_axes(self, other: Frames) -> Frames:
        """These frames with every column `other` has: a rerun whose runs with some axis all failed lacks that
        axis, and its cells are then missing on the rerun's side (not a KeyError)."""
        def widen(mine: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
            return mine.assign(**{c: None for c in theirs.columns if c not in mine})

        return Frames(widen(self.trained, other.trained), widen(self.baselines, other.baselines),
                      widen(self.all, other.all))


@dataclass(frozen=True)
class Rerun:
    """What a kind's `verify` compares: the study's records and the same with its reruns in their place."""

    study: str
    profile: str
    order: Order
    names: Mapping[str, str]  # report.axis_labels
    recorded: Sequence[RunRecord]
    reruns: Mapping[str, RunRecord]
    tolerance: float
    wanted: set[str] | None  # the items asked for (None: all of them)
    # The profile's claims as the records give them ((study, claim) -> claims.Result or the error), the family
    # a claim's verdict is adjusted in, and the claims this profile tests on the original's data.
    others: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    on_original: Any = ()
    before: Frames = field(init=False)
    after: Frames = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "before", Frames.of(self.recorded))
        object.__setattr__(self, "after", Frames.of(substituted(self.recorded, self.reruns)))

    def asked(self, name: str) -> bool:
        return self.wanted is None or name in self.wanted

    def failed(self) -> list[dict[str, Any]]:
        return [dict(r.axes) for r in self.recorded if r.status == "failed"]


def slack(tolerance: float, item: ItemCheck) -> float:
    """What a cell may move beyond its interval: the tolerance, or the smallest change its printed form shows."""
    return max(tolerance, units.printed_step(item.decimals) / item.scale)


def interval(values: pd.Series | None) -> aggregate.Interval:
    return aggregate.interval([] if values is None else values.tolist())


def cell_words(key: Any, axes: Sequence[str] = (), names: Mapping[str, str] | None = None) -> str:
    """A cell as the PDF names it: 'loss = contrastive, epochs = 10' (each axis as the report names it, a metric in
    words, a baseline row by its name); without `axes`, its labels joined by ' / '."""
    parts = key if isinstance(key, tuple) else (key,)

    def label(axis: str | None, value: Any) -> str:
        if isinstance(value, baselines.Baseline):
            return str(value)
        if axis == "metric":
            return metric_name(str(value))
        return label_text(value) if axis is None else f"{axis_name(axis, names or {})} = {label_text(value)}"

    if len(axes) != len(parts):
        return " / ".join(label(None, p) for p in parts)
    # "-" stands for an axis a run does not have (check_runs fills it in): the PDF names no such axis
    return ", ".join(label(axis, p) for axis, p in zip(axes, parts) if not (isinstance(p, str) and p == "-"))


def marking(cell: tables.Cell) -> str:
    return "bold" if cell.best else {1: "marked higher", -1: "marked lower"}.get(cell.mark, "unmarked")


def rows_behind(frame: pd.DataFrame, metrics: Iterable[str], where: dict, axes: Iterable[str | None]) -> set[str]:
    """Run_ids with any of `metrics`, matching `where` (a run without one of its axes is kept, as in tables),
    carrying every axis of `axes` (a trained cell) or being a baseline (a row of no learning beside it)."""
    data = aggregate.restrict(frame, list(metrics), where)
    for axis in axes:
        if axis and axis not in ("epoch", "metric"):
            carries = data[axis].notna() if axis in data else pd.Series(False, index=data.index)
            baseline = data[BASELINE_AXIS].notna() if BASELINE_AXIS in data else pd.Series(False, index=data.index)
            data = data[carries | baseline]
    return set(data["run_id"])


def selection_metrics(spec: Any, metrics: Sequence[str]) -> list[str]:
    """The metrics an item reads beyond those it shows: what its `select` chooses by, what its epoch rule reads."""
    metrics = list(metrics)
    if spec.select is not None:
        metrics.append(spec.select.by)
    if spec.epoch.startswith("best:"):
        metrics.append(spec.epoch.removeprefix("best:"))
    return metrics


def check_runs(name: str, kind: str, rerun: Rerun, run_ids: set[str],
               metrics: Sequence[str] | None = None) -> ItemCheck:
    """An item drawn some other way (the original-versus-reproduced tables): its runs' cells, one per matrix
    cell, epoch and metric it shows (`metrics`; None: every metric), mean over seeds."""
    item = ItemCheck(name, kind, units.PERCENT,
                     shows=", ".join(metric_name(m) for m in metrics or []) + (", percent" if metrics else ""))
    frames = [aggregate.long_frame([r for r in records if r.run_id in run_ids])
              for records in (rerun.recorded, substituted(rerun.recorded, rerun.reruns))]
    if metrics is not None:
        frames = [frame[frame["metric"].isin(list(metrics))] if not frame.empty else frame for frame in frames]
    if frames[0].empty:
        return item
    axes = [c for c in frames[0].columns if c not in ("run_id", "seed", "value") and frames[0][c].notna().any()]
    points = [{key: aggregate.seed_values(group)
               for key, group in frame.fillna({a: "-" for a in axes}).groupby(axes, sort=False)} for frame in frames]
    for key in dict.fromkeys([*points[0], *points[1]]):
        item.cells.append(CellDiff(cell_words(key, axes, rerun.names), *(interval(p.get(key)) for p in points),
                                   slack(rerun.tolerance, item)))
    return item
