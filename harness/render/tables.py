"""Table contents as pure functions of a results frame and a spec: rows, columns, cell texts, bold, chosen cell;
and the original's numbers beside ours. No files, no LaTeX beyond a cell's text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness import aggregate
from harness.render.axes import chosen_words, label_text, natural_key, ordered
from harness.render.schema import ReferenceSpec, SelectSpec, TableSpec

Order = Mapping[str, Sequence[Any]]  # axis -> its labels as the matrix declares them


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False  # clearly the column's best: shown in bold


@dataclass(frozen=True)
class Table:
    rows: list[Any]
    columns: list[Any]
    cells: dict[tuple[Any, Any], Cell]
    ns: list[int]  # the seed counts behind the cells, for the caption
    chosen: str | None  # the grid cell kept by `select`, in words


@dataclass(frozen=True)
class Reference:
    their_cols: list[Any]
    our_cols: list[Any]
    body: list[dict[str, Any]]  # per row: label, their cell texts, ours


def cell_text(mean: float, std: float, n: int, scale: float) -> str:
    """'81.71 $\\pm$ 0.03'; the mean alone for one seed; '--' for no number."""
    if not np.isfinite(mean):
        return "--"
    if n < 2 or not np.isfinite(std):
        return f"{mean * scale:.2f}"
    return f"{mean * scale:.2f} $\\pm$ {std * scale:.2f}"


def selected(frame: pd.DataFrame, data: pd.DataFrame, select: SelectSpec | None,
             names: Mapping[str, str]) -> tuple[pd.DataFrame, str | None]:
    """`data` narrowed to the grid cell that `select` chooses on the whole frame, and that cell in words."""
    if select is None:
        return data, None
    choice = aggregate.best_cell(frame, select.axes, select.by)
    return aggregate.keep_cell(data, choice), chosen_words(choice, names)


def failed_cells(failed: Sequence[Mapping[str, Any]], spec: TableSpec) -> list[Mapping[str, Any]]:
    """The failed runs (their axis labels) that belong in this table: they have its axes and match its `where`."""
    return [axes for axes in failed
            if spec.rows in axes and (spec.columns == "epoch" or spec.columns in axes)
            and all(axis not in axes or aggregate.matches(axes[axis], wanted) for axis, wanted in spec.where.items())]


def table(frame: pd.DataFrame, spec: TableSpec, order: Order, failed: Sequence[Mapping[str, Any]] = (),
          names: Mapping[str, str] | None = None) -> Table:
    """One metric, rows x columns, mean +- std over seeds; a cell whose runs all failed says 'failed'."""
    data = aggregate.restrict(frame, [spec.metric], spec.where, spec.epoch)
    data, chosen = selected(frame, data, spec.select, names or {})
    summary = aggregate.summarise(data.dropna(subset=[spec.rows, spec.columns]), [spec.rows, spec.columns])
    failed = failed_cells(failed, spec)
    rows = ordered(summary[spec.rows].tolist() + [a[spec.rows] for a in failed], order.get(spec.rows))
    columns = ordered(summary[spec.columns].tolist() + [a[spec.columns] for a in failed if spec.columns != "epoch"],
                      order.get(spec.columns))
    cells: dict[tuple[Any, Any], Cell] = {}
    for column in columns:
        cells.update(column_cells(summary, spec, rows, column, failed))
    return Table(rows, columns, cells, sorted(set(summary["n"].astype(int))), chosen)


def column_cells(summary: pd.DataFrame, spec: TableSpec, rows: Sequence[Any], column: Any,
                 failed: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, Any], Cell]:
    """One column's cells; bold goes to its clearly best row, if any."""
    part = summary[summary[spec.columns] == column].set_index(spec.rows)
    entries = [part.loc[r] if r in part.index else None for r in rows]
    means = [e["mean"] if e is not None else np.nan for e in entries]
    stds = [e["std"] if e is not None else np.nan for e in entries]
    ns = [int(e["n"]) if e is not None else 0 for e in entries]
    best = aggregate.clearly_best(means, stds, ns)
    scale = 100.0 if spec.percent else 1.0
    cells = {}
    for i, row in enumerate(rows):
        text = cell_text(means[i], stds[i], ns[i], scale)
        if ns[i] == 0 and any(a[spec.rows] == row and (spec.columns == "epoch" or a[spec.columns] == column)
                              for a in failed):
            text = "failed"  # a failed run is a result ("batch 1 cannot train"), not a gap
        cells[(row, column)] = Cell(text, i == best)
    return cells


def reference(frame: pd.DataFrame, ref: ReferenceSpec, original: pd.DataFrame, order: Order) -> Reference:
    """The original's numbers (`original`: their CSV) beside ours, row by row."""
    original = their_rows(original, ref)
    if ref.columns is not None:  # one metric, their epochs beside ours
        ours = aggregate.summarise(aggregate.restrict(frame, [ref.metric], ref.where).dropna(subset=[ref.axis]),
                                   [ref.axis, "epoch"])
        their_cols = sorted(original[ref.columns].unique())
        our_cols = sorted(ours["epoch"].unique())
    else:  # several metrics at the last epoch
        metrics = [c.ours for c in ref.values]
        ours = aggregate.summarise(aggregate.restrict(frame, metrics, ref.where, "last").dropna(subset=[ref.axis]),
                                   [ref.axis, "metric"])
        their_cols = [c.label for c in ref.values if c.theirs is not None]
        our_cols = [c.label for c in ref.values]
    rows = reference_rows(list(ours[ref.axis]) + list(original["row"]), order.get(ref.axis))
    body = [reference_row(row, original[original["row"] == row], ours[ours[ref.axis] == row], ref, their_cols,
                          our_cols) for row in rows]
    return Reference(their_cols, our_cols, body)


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
    theirs_scale = 1.0 if ref.percent_in_file else 100.0
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
        "theirs": [f"{v * theirs_scale:.2f}" if v is not None and pd.notna(v) else "--" for v in theirs],
        "ours": [cell_text(c["mean"], c["std"], int(c["n"]), 100.0) if c is not None else "--" for c in ours],
    }
