"""The figure kind (`report.figures`): lines over epochs or an axis, or a heatmap over two axes, with the baselines
as reference lines; verified point by point (each plotted group's mean over seeds) and by its chosen cell."""

from __future__ import annotations

from typing import Any

from harness import aggregate, units
from harness.render import baselines, figures, tables
from harness.render.kinds.base import (CellDiff, ItemCheck, Rerun, cell_words, interval, rows_behind,
                                       selection_metrics, slack)
from harness.report import FigureSpec, ReportSpec

NAME = "figure"
SECTION = "results"


def specs(report: ReportSpec) -> list[FigureSpec]:
    return list(report.figures)


def item_name(spec: FigureSpec) -> str:
    return spec.name


def inputs(report: ReportSpec) -> list[str]:
    return [f"figure_{spec.name}" for spec in report.figures]


def write(chapter: Any, facts: dict[str, Any]) -> list[str]:
    return [name for item in chapter.study.spec.report.figures for name in _write(chapter, item, facts)]


def _write(chapter: Any, item: FigureSpec, facts: dict[str, Any]) -> list[str]:
    name = f"figure_{item.name}"
    if absent := chapter.absent(item.x, item.hue, item.y):
        return chapter.omitted(f"{name}.tex", absent)
    plot, chosen = figures.figure_data(chapter.frame, item, chapter.study.axes, chapter.names, chapter.baselines)
    figures.save_pdf(figures.draw(plot, item, chapter.names), chapter.folder / f"{name}.pdf")
    return [f"{name}.pdf", chapter.write(f"{name}.tex", "figure.tex.j2", figure=item, facts=facts, chosen=chosen,
                                         runs=plot.runs,
                                         path=f"generated/{chapter.study.name}/{name}.pdf",
                                         baseline_note=figures.note(plot, item))]


def runs_behind(spec: FigureSpec, frame: Any, profile: str, order: Any) -> set[str]:
    return rows_behind(frame, selection_metrics(spec, spec.metrics), spec.where, [spec.x, spec.y, spec.hue])


def verify(spec: FigureSpec, rerun: Rerun) -> ItemCheck | None:
    """A figure's points: per plotted group (x, hue or y, metric) the mean over seeds, as its lines are drawn."""
    if not rerun.asked(spec.name):
        return None
    # A heatmap prints its squares with fewer decimals than a table: a move it cannot show is no change.
    item = ItemCheck(f"{rerun.study}/{spec.name}", NAME, units.PERCENT,
                     decimals=units.HEATMAP_DECIMALS if spec.kind == "heatmap" else units.DECIMALS)
    axes = [a for a in dict.fromkeys((spec.x, spec.hue, spec.y, "metric")) if a]
    if rerun.before.trained.empty or any(a not in rerun.before.trained for a in axes):
        return item
    points, chosen = [], []
    for frames in (rerun.before, rerun.after.with_axes(rerun.before)):
        trained = baselines.trained_only(frames.trained)
        data = aggregate.restrict(trained, spec.metrics, spec.where, "all" if spec.x == "epoch" else "last")
        data, words = tables.selected(trained, data, spec.select, rerun.names, rerun.order)
        points.append({key: aggregate.seed_values(group)
                       for key, group in data.dropna(subset=axes).groupby(axes, sort=False)})
        chosen.append(words)
    for key in dict.fromkeys([*points[0], *points[1]]):
        item.cells.append(CellDiff(cell_words(key), *(interval(p.get(key)) for p in points),
                                   slack(rerun.tolerance, item)))
    if chosen[0] != chosen[1]:
        item.changes.append(f"chosen cell {chosen[0]} -> {chosen[1]}")
    return item
