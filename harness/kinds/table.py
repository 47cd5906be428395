"""The table kind (`report.tables`): a metric over two axes, each cell its mean and 95 % interval over seeds, with
the baselines beside it and paired marks against a reference; verified cell by cell, with its chosen cell and marks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from harness.kinds.shared import Checker, SelectSpec, each, epoch_rule
from harness.schema import Strict

if TYPE_CHECKING:  # the behaviour's types, read at render and verify time (imported inside the functions)
    from harness.render.compare import ItemCheck, Rerun

NAME = "table"
FIELD = "tables"  # its key in a study's `report:`
SECTION = "results"  # where a generated chapter places it


class TableSpec(Strict):
    name: str
    metric: str
    rows: str  # a matrix axis
    columns: str  # "epoch" or a matrix axis
    caption: str
    percent: bool = True
    # "last": only each run's last evaluated epoch (when columns is not "epoch"); "best:<metric>": the epoch at which
    # that metric peaked (best:val_... is selection on a validation split; best: a test metric, the test-set choice
    # some originals made)
    epoch: str = "all"
    where: dict[str, Any] = {}  # axis -> label: only runs with these labels
    select: SelectSpec | None = None  # only the best cell of a grid (and runs outside the grid)
    # A reference row: a label of the row axis, or a baseline (raw_input, untrained). Each other cell is marked
    # where the 95% t-interval of its paired difference by seed to the reference in its column excludes 0
    # (up or down); None: bold marks a column's clear best instead.
    compare_to: str | int | float | None = None
    # Also print each cell's lowest and highest single run: what one unseeded run (as the originals ran) could
    # have reported, beside the mean and its interval.
    spread: bool = False

    @field_validator("epoch")
    @classmethod
    def _epoch(cls, rule: str) -> str:
        return epoch_rule(rule)

    def shown_metrics(self) -> list[str]:
        return [self.metric]

    def placed_axes(self) -> dict[str, str | None]:
        """Where the item puts matrix axes (or "epoch"): its field -> the axis."""
        return {"rows": self.rows, "columns": self.columns}


FIELD_TYPE, FIELD_DEFAULT = list[TableSpec], []  # how ReportSpec holds this kind's items


def check(items: list[TableSpec], checker: Checker) -> None:
    for i, item in enumerate(items):
        checker.grid_item(FIELD, i, item)
        if item.compare_to is not None and item.rows in checker.order:
            checker.row_label(f"report.{FIELD}[{i}].compare_to", item.compare_to, item.rows)


def stem(spec: TableSpec) -> str:
    return f"table_{spec.name}"


def write_one(chapter: Any, item: TableSpec, facts: dict[str, Any]) -> list[str]:
    from harness.render import baselines, tables
    from harness.render.axes import axis_name
    from harness.render.facts import failed_axes

    name = f"table_{item.name}.tex"
    if absent := chapter.absent(item.rows, item.columns):
        return chapter.omitted(name, absent)
    data = tables.table(chapter.frame, item, chapter.study.axes, failed_axes(chapter.records), chapter.names,
                        chapter.baselines)
    return [chapter.write(name, "table.tex.j2", table=item, rows=data.rows, columns=data.columns, cells=data.cells,
                          facts=facts, ns=data.ns, row_label=axis_name(item.rows, chapter.names),
                          column_label=axis_name(item.columns, chapter.names), chosen=data.chosen,
                          baseline_rows=data.baseline_rows, baseline_columns=data.baseline_columns,
                          compare_to=data.compare_to, compare_in_row=data.compare_in_row,
                          compare_found=data.compare_found,
                          wild=f"{tables.WILD_SD_SHARE:.0%}".replace("%", "\\,\\%") if any(
                              cell.wild for cell in data.cells.values()) else "",
                          baseline_note=baselines.table_note(data.baseline_rows, data.baseline_columns,
                                                             item.columns == "epoch"))]


write = each(write_one)


def runs_behind(spec: TableSpec, frame: Any, profile: str, order: Any) -> set[str]:
    from harness.render.compare import rows_behind, selection_metrics

    return rows_behind(frame, selection_metrics(spec, [spec.metric]), spec.where, [spec.rows, spec.columns])


def verify(spec: TableSpec, rerun: Rerun) -> ItemCheck | None:
    from harness import units
    from harness.render import tables
    from harness.render.compare import CellDiff, ItemCheck, cell_words, interval, marking, slack

    if not rerun.asked(spec.name):
        return None
    from harness.render.axes import metric_name

    item = ItemCheck(f"{rerun.study}/{spec.name}", NAME, units.PERCENT if spec.percent else 1.0,
                     shows=metric_name(spec.metric) + (", percent" if spec.percent else ""))
    axes = (spec.rows, spec.columns)
    before = rerun.before
    if before.trained.empty or any(a not in before.trained for a in (spec.rows, spec.columns) if a != "epoch"):
        return item  # a table this profile cannot draw (an axis of another profile) has no cells to compare
    after = rerun.after.with_axes(before)
    failed, order, names = rerun.failed(), rerun.order, rerun.names
    grids = [tables.cell_values(f.trained, spec, order, failed, names, f.baselines) for f in (before, after)]
    shown = [tables.table(f.trained, spec, order, failed, names, f.baselines) for f in (before, after)]
    for key in dict.fromkeys([*grids[0].values, *grids[1].values]):
        values = [grid.values.get(key) for grid in grids]
        item.cells.append(CellDiff(cell_words(key, axes, names), *(interval(v) for v in values),
                                   slack(rerun.tolerance, item)))
    if grids[0].chosen != grids[1].chosen:
        item.changes.append(f"chosen cell {grids[0].chosen} -> {grids[1].chosen}")
    for key, cell in shown[0].cells.items():
        new = shown[1].cells.get(key)
        if new is not None and (cell.mark, cell.best) != (new.mark, new.best):
            item.borderline.append(f"{cell_words(key, axes, names)}: {marking(cell)} -> {marking(new)}")
    return item
