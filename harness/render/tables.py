"""Table contents as pure functions of a results frame and a spec: rows, columns, cell texts (mean and 95%
t-interval over seeds), the baselines' rows or columns, bold or the marks of a paired comparison with a reference
row, the chosen cell; and the original's numbers beside ours. No files, no LaTeX beyond a cell's text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness import aggregate
from harness.render import baselines
from harness.render.axes import label_text, natural_key, ordered, selection_words
from harness.render.baselines import Baseline
from harness.report import ReferenceSpec, SelectSpec, TableSpec, where_for
from harness import units

Order = Mapping[str, Sequence[Any]]  # axis -> its labels as the matrix declares them
# A cell whose seeds' standard deviation exceeds this share of its mean is flagged (a dagger and a caption
# line): its mean hides runs that trained and runs that did not, and a rerun elsewhere may land far from it.
WILD_SD_SHARE = 0.10


def wild(values: pd.Series | None) -> bool:
    """Whether a cell's values per seed disagree widely: at least two, sd above WILD_SD_SHARE of |mean|."""
    if values is None or values.count() < 2:
        return False
    return bool(values.std() > WILD_SD_SHARE * abs(values.mean()))


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False  # clearly the column's best: shown in bold (only without a reference row)
    mark: int = 0  # +1 / -1: the 95% interval of the paired difference to the reference row is above / below 0
    wild: bool = False  # its seeds disagree widely (WILD_SD_SHARE): chaotic training, flagged, not hidden


@dataclass(frozen=True)
class Table:
    rows: list[Any]
    columns: list[Any]
    cells: dict[tuple[Any, Any], Cell]  # (row, column) -> cell; baseline rows and columns are keyed by Baseline
    ns: list[int]  # the seed counts behind the cells, for the caption
    chosen: str | None  # the grid cell kept by `select`, in words
    baseline_rows: list[Baseline] = field(default_factory=list)  # shown first, before the trained rows
    baseline_columns: list[Baseline] = field(default_factory=list)  # when baselines differ by row (one_shot's split)
    compare_to: str | None = None  # the reference row (or baseline column) in words; None: no paired marks
    compare_in_row: bool = False  # the reference is a baseline column: cells are compared within their row
    compare_found: bool = False  # the reference has cells in this table (else nothing is marked)


@dataclass(frozen=True)
class Reference:
    their_cols: list[Any]
    our_cols: list[Any]
    body: list[dict[str, Any]]  # per row: label, their cell texts, ours


def cell_text(mean: float, half: float, n: int, scale: float) -> str:
    """'81.71 $\\pm$ 1.23' (the mean and the half-width of its 95% interval); the mean alone for one seed; '--'
    for no number."""
    if not np.isfinite(mean):
        return "--"
    if n < 2 or not np.isfinite(half):
        return units.fixed(mean, scale)
    return f"{units.fixed(mean, scale)} $\\pm$ {units.fixed(half, scale)}"


def summary_text(values: pd.Series | None, scale: float, spread: bool = False) -> str:
    """A cell's text from its values per seed; with `spread`, ' (runs lowest--highest)' after it: the worst and
    the best single run, worded so that it is never read as an interval."""
    ci = aggregate.interval([] if values is None else values.tolist())
    text = cell_text(ci.mean, ci.half, ci.n, scale)
    if spread and ci.n >= 2:
        text += f" (runs {units.fixed(float(values.min()), scale)}--{units.fixed(float(values.max()), scale)})"
    return text


def selected(frame: pd.DataFrame, data: pd.DataFrame, select: SelectSpec | None, names: Mapping[str, str],
             order: Order | None = None) -> tuple[pd.DataFrame, str | None]:
    """`data` narrowed to the grid cell that `select` chooses on the whole frame (aggregate.select), and that cell
    in words for a caption."""
    data, choices = aggregate.select(frame, data, select, order)
    return data, selection_words(choices, names)


def failed_cells(failed: Sequence[Mapping[str, Any]], spec: TableSpec) -> list[Mapping[str, Any]]:
    """The failed runs (their axis labels) that belong in this table: they have its axes and match its `where`."""
    return [axes for axes in failed
            if baselines.AXIS not in axes and spec.rows in axes and (spec.columns == "epoch" or spec.columns in axes)
            and all(axis not in axes or aggregate.matches(axes[axis], wanted) for axis, wanted in spec.where.items())]


Values = dict[tuple[Any, Any], pd.Series]  # (row, column) -> the cell's value per seed (indexed by seed)


@dataclass(frozen=True)
class Grid:
    values: Values  # (row, column) -> the cell's value per seed, the baselines' cells included
    rows: list[Any]  # the trained rows and columns, in declared order (failed cells included)
    columns: list[Any]
    base: BaselineValues
    chosen: str | None  # the grid cell kept by `select`, in words
    failed: list[Mapping[str, Any]]


def cell_values(frame: pd.DataFrame, spec: TableSpec, order: Order, failed: Sequence[Mapping[str, Any]] = (),
                names: Mapping[str, str] | None = None, baseline_runs: pd.DataFrame | None = None) -> Grid:
    """What a table's cells are computed from: each cell's value per seed (its runs' mean at the table's epoch),
    the rows and columns, and the chosen grid cell. `table` renders it; `harness verify` compares two of them."""
    frame = baselines.trained_only(frame)
    data = aggregate.restrict(frame, [spec.metric], spec.where, spec.epoch)
    data, chosen = selected(frame, data, spec.select, names or {}, order)
    data = data.dropna(subset=[spec.rows, spec.columns])
    values: Values = {(r, c): aggregate.seed_values(group)
                      for (r, c), group in data.groupby([spec.rows, spec.columns], sort=False)}
    failed = failed_cells(failed, spec)
    rows = ordered([r for r, _ in values] + [a[spec.rows] for a in failed], order.get(spec.rows))
    columns = ordered([c for _, c in values] + [a[spec.columns] for a in failed if spec.columns != "epoch"],
                      order.get(spec.columns))
    base = baseline_values(baselines.matching(baseline_runs, [spec.metric], spec.where), spec, rows, columns,
                           order)
    values.update(base.values)
    return Grid(values, rows, columns, base, chosen, failed)


def table(frame: pd.DataFrame, spec: TableSpec, order: Order, failed: Sequence[Mapping[str, Any]] = (),
          names: Mapping[str, str] | None = None, baseline_runs: pd.DataFrame | None = None) -> Table:
    """One metric, rows x columns: the mean over seeds and its 95% t-interval (a seed's value is the mean of its
    rows in the cell); a cell whose runs all failed says 'failed'. The baselines (`baseline_runs`) that match the
    table's `where` and its columns come first. With `compare_to`, a cell is marked where the paired difference by
    seed to the reference row in its column has a 95% interval excluding 0; without, bold marks a clear best."""
    grid = cell_values(frame, spec, order, failed, names, baseline_runs)
    values, rows, columns, base, chosen, failed = (grid.values, grid.rows, grid.columns, grid.base, grid.chosen,
                                                   grid.failed)
    all_rows, all_columns = [*base.rows, *rows], [*base.columns, *columns]
    scale = units.PERCENT if spec.percent else 1.0
    cells: dict[tuple[Any, Any], Cell] = {}
    for row in all_rows:
        for column in all_columns:
            text = summary_text(values.get((row, column)), scale, spec.spread)
            if (row, column) not in values and any(
                    a[spec.rows] == row and (spec.columns == "epoch" or a[spec.columns] == column) for a in failed):
                text = "failed"  # a failed run is a result ("batch 1 cannot train"), not a gap
            cells[(row, column)] = Cell(text, wild=wild(values.get((row, column))))
    reference = reference_of(spec.compare_to, rows, base)
    if spec.compare_to is not None and reference is None:
        pass  # a reference was named but has no cells here: nothing is marked (the caption says so)
    elif reference is None:
        for column in columns:  # bold: a column's clear best, the baselines in it included
            best = clearly_best([values.get((row, column)) for row in all_rows])
            if best is not None:
                key = (all_rows[best], column)
                cells[key] = dataclasses.replace(cells[key], best=True)
    else:
        for key in cells:
            ref = reference_key(reference, *key, base)
            if ref is not None and key in values and ref in values:
                sign = aggregate.paired_difference(values[key].to_dict(), values[ref].to_dict()).sign
                cells[key] = dataclasses.replace(cells[key], mark=sign)
    ns = sorted({int(v.count()) for key, v in values.items() if key in cells and v.count()})
    named = None if spec.compare_to is None else label_text(
        reference if reference is not None else baselines.name(spec.compare_to))
    return Table(rows, columns, cells, ns, chosen, base.rows, base.columns, named,
                 isinstance(reference, Baseline) and not base.rows, reference is not None)


def clearly_best(column: Sequence[pd.Series | None]) -> int | None:
    """aggregate.clearly_best over a column's cells (their values per seed)."""
    stats = [(v.mean(), v.std(), int(v.count())) if v is not None and v.count() else (np.nan, np.nan, 0)
             for v in column]
    return aggregate.clearly_best(*zip(*stats)) if stats else None


@dataclass(frozen=True)
class BaselineValues:
    rows: list[Baseline]  # rows layout: one row per baseline label
    columns: list[Baseline]  # columns layout: one column per baseline label (and table column it belongs to)
    values: Values
    by_column: bool  # columns layout with baselines that carry the table's (non-epoch) column axis


def baseline_values(data: pd.DataFrame, spec: TableSpec, rows: Sequence[Any], columns: Sequence[Any],
                    order: Order) -> BaselineValues:
    """The baselines' cells. A baseline without the table's row axis is a row (placed first) with a cell in every
    column it agrees with: every column when it lacks the column axis, and every epoch column when columns are
    epochs (a baseline does not train: its one value, after epoch 0, holds at every epoch). A baseline that carries
    the row axis (one_shot's split: a different task per row) cannot be one row: it is a column, placed first, with
    a cell in every row it agrees with (one column per table column when it carries the column axis too)."""
    if data.empty or not columns:
        return BaselineValues([], [], {}, False)
    by_row = baselines.carries(data, spec.rows)
    by_column = spec.columns != "epoch" and baselines.carries(data, spec.columns)
    keys: list[Baseline] = []
    values: Values = {}

    def seeds(runs: pd.DataFrame, **labels: Any) -> pd.Series | None:
        part = baselines.agreeing(runs, {axis: label for axis, label in labels.items() if axis != "epoch"})
        return None if part.empty else aggregate.seed_values(part)

    for label in baselines.labels(data, order):
        runs = data[data[baselines.AXIS] == label]
        if not by_row:
            key = Baseline(label)
            found = {(key, c): seeds(runs, **{spec.columns: c}) for c in columns}
        else:
            found = {}
            for detail in (columns if by_column else [None]):
                key = Baseline(label, detail)
                extra = {spec.columns: detail} if by_column else {}
                found.update({(r, key): seeds(runs, **{spec.rows: r, **extra}) for r in rows})
        found = {k: v for k, v in found.items() if v is not None}
        keys += list(dict.fromkeys(k[0] if not by_row else k[1] for k in found))
        values.update(found)
    return BaselineValues([] if by_row else keys, keys if by_row else [], values, by_column)


def reference_of(compare_to: Any, rows: Sequence[Any], base: BaselineValues) -> Any:
    """The table's reference: a trained row label, a baseline (row or column), or None (none asked for, or it
    has no cells in this table)."""
    if compare_to is None:
        return None
    if compare_to in rows:
        return next(r for r in rows if r == compare_to)
    for key in [*base.rows, *base.columns]:
        if key.label == compare_to:
            return Baseline(compare_to)
    return None


def reference_key(reference: Any, row: Any, column: Any, base: BaselineValues) -> tuple[Any, Any] | None:
    """The cell that (row, column) is compared with: the reference row's cell in the same column; for a baseline
    reference shown as columns (it differs by row: another row is another task), its cell in the same row (and for
    the same table column). None for the reference itself and for cells without a counterpart."""
    if not isinstance(reference, Baseline):  # a trained row
        if row == reference or isinstance(column, Baseline):
            return None
        return (reference, column)
    label = reference.label
    if isinstance(row, Baseline):  # a baseline row
        return None if row.label == label else (Baseline(label), column)
    if isinstance(column, Baseline):  # a baseline column
        return None if column.label == label else (row, Baseline(label, column.detail))
    if base.rows:  # a trained cell, the baselines shown as rows
        return (Baseline(label), column)
    return (row, Baseline(label, column if base.by_column else None))


def reference(frame: pd.DataFrame, ref: ReferenceSpec, original: pd.DataFrame, order: Order,
              profile: str = "") -> Reference:
    """The original's numbers (`original`: their CSV) beside ours, row by row (trained runs only: no baselines)."""
    frame, where = baselines.trained_only(frame), where_for(ref, profile)
    original = their_rows(original, ref)
    if ref.columns is not None:  # one metric, their epochs beside ours
        ours = per_seed_summary(aggregate.restrict(frame, [ref.metric], where), [ref.axis, "epoch"])
        their_cols = sorted(original[ref.columns].unique())
        our_cols = sorted(ours["epoch"].unique())
    else:  # several metrics at the last epoch
        metrics = [c.ours for c in ref.values]
        ours = per_seed_summary(aggregate.restrict(frame, metrics, where, "last"), [ref.axis, "metric"])
        their_cols = [c.label for c in ref.values if c.theirs is not None]
        our_cols = [c.label for c in ref.values]
    rows = reference_rows(list(ours[ref.axis]) + list(original["row"]), order.get(ref.axis))
    body = [reference_row(row, original[original["row"] == row], ours[ours[ref.axis] == row], ref, their_cols,
                          our_cols) for row in rows]
    return Reference(their_cols, our_cols, body)


def per_seed_summary(data: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """aggregate.summarise over seeds: a seed's value is the mean of its rows in the group."""
    data = data.dropna(subset=list(by))
    if data.empty:
        return aggregate.summarise(data, by)
    return aggregate.summarise(data.groupby([*by, "seed"], as_index=False, sort=False)["value"].mean(), by)


def their_rows(original: pd.DataFrame, ref: ReferenceSpec) -> pd.DataFrame:
    """Their rows in the setting compared (`their_where`: backbone, dataset), labelled with our axis labels."""
    for column, value in ref.their_where.items():
        original = original[original[column].astype(str) == str(value)]
    return original.assign(row=original[ref.rows].map(lambda v: ref.row_map.get(v, v)))


def reference_rows(labels: Sequence[Any], declared: Sequence[Any] | None) -> list[Any]:
    """Their rows and ours interleaved by label ("10-90" ... "100-0") when labels lead with a number, so a shared
    setting shares a line; otherwise ours in declared order, then theirs."""
    rows = list(dict.fromkeys(labels))
    if all(label_text(r)[:1].isdigit() for r in rows):
        return sorted(rows, key=natural_key)
    return ordered(rows, declared)


def reference_row(row: Any, theirs_row: pd.DataFrame, mine: pd.DataFrame, ref: ReferenceSpec,
                  their_cols: Sequence[Any], our_cols: Sequence[Any]) -> dict[str, Any]:
    theirs_scale = 1.0 if ref.percent_in_file else units.PERCENT
    if ref.columns is not None:
        series = theirs_row.set_index(ref.columns)[ref.value_column]
        theirs = [series.get(c) for c in their_cols]
        mine = mine.set_index("epoch")
        ours = [mine.loc[c] if c in mine.index else None for c in our_cols]
    else:
        theirs = [theirs_row[c.theirs].iloc[0] if len(theirs_row) else None for c in ref.values if c.theirs is not None]
        mine = mine.set_index("metric")
        ours = [mine.loc[c.ours] if c.ours in mine.index else None for c in ref.values]
    return {
        "label": row,
        "theirs": [units.fixed(v, theirs_scale) if v is not None and pd.notna(v) else "--" for v in theirs],
        "ours": [cell_text(c["mean"], c["ci95"], int(c["n"]), units.PERCENT) if c is not None else "--" for c in ours],
    }
