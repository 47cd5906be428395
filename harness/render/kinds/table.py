"""The table kind (`report.tables`): a metric over two axes, each cell its mean and 95 % interval over seeds, with
the baselines beside it and paired marks against a reference; verified cell by cell, with its chosen cell and marks."""

from __future__ import annotations

from typing import Any

from harness import units
from harness.render import baselines, tables
from harness.render.axes import axis_name
from harness.render.facts import failed_axes
from harness.render.kinds.base import (CellDiff, ItemCheck, Rerun, cell_words, interval, marking, rows_behind,
                                       selection_metrics, slack)
from harness.report import ReportSpec, TableSpec

NAME = "table"
SECTION = "results"  # where a generated chapter places it


def specs(report: ReportSpec) -> list[TableSpec]:
    return list(report.tables)


def item_name(spec: TableSpec) -> str:
    return spec.name


def inputs(report: ReportSpec) -> list[str]:
    """The files a chapter inputs for this kind's items."""
    return [f"table_{spec.name}" for spec in report.tables]


def write(chapter: Any, facts: dict[str, Any]) -> list[str]:
    return [name for item in chapter.study.spec.report.tables for name in _write(chapter, item, facts)]


def _write(chapter: Any, item: TableSpec, facts: dict[str, Any]) -> list[str]:
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


def runs_behind(spec: TableSpec, frame: Any, profile: str, order: Any) -> set[str]:
    return rows_behind(frame, selection_metrics(spec, [spec.metric]), spec.where, [spec.rows, spec.columns])


def verify(spec: TableSpec, rerun: Rerun) -> ItemCheck | None:
    if not rerun.asked(spec.name):
        return None
    item = ItemCheck(f"{rerun.study}/{spec.name}", NAME, units.PERCENT if spec.percent else 1.0)
    before = rerun.before
    if before.trained.empty or any(a not in before.trained for a in (spec.rows, spec.columns) if a != "epoch"):
        return item  # a table this profile cannot draw (an axis of another profile) has no cells to compare
    after = rerun.after.with_axes(before)
    failed, order, names = rerun.failed(), rerun.order, rerun.names
    grids = [tables.cell_values(f.trained, spec, order, failed, names, f.baselines) for f in (before, after)]
    shown = [tables.table(f.trained, spec, order, failed, names, f.baselines) for f in (before, after)]
    for key in dict.fromkeys([*grids[0].values, *grids[1].values]):
        values = [grid.values.get(key) for grid in grids]
        item.cells.append(CellDiff(cell_words(key), *(interval(v) for v in values), slack(rerun.tolerance, item)))
    if grids[0].chosen != grids[1].chosen:
        item.changes.append(f"chosen cell {grids[0].chosen} -> {grids[1].chosen}")
    for key, cell in shown[0].cells.items():
        new = shown[1].cells.get(key)
        if new is not None and (cell.mark, cell.best) != (new.mark, new.best):
            item.borderline.append(f"{cell_words(key)}: {marking(cell)} -> {marking(new)}")
    return item
