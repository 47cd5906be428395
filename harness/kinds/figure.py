"""The figure kind (`report.figures`): lines over epochs or an axis, or a heatmap over two axes, with the baselines
as reference lines; verified point by point (each plotted group's mean over seeds) and by its chosen cell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from harness.errors import ConfigError
from harness.kinds.shared import Checker, SelectSpec, each
from harness.schema import Strict

if TYPE_CHECKING:  # the behaviour's types, read at render and verify time (imported inside the functions)
    from harness.render.compare import ItemCheck, Rerun

NAME = "figure"
FIELD = "figures"  # its key in a study's `report:`
SECTION = "results"


class FigureSpec(Strict):
    name: str
    kind: Literal["line", "heatmap"] = "line"
    x: str  # "epoch" or a matrix axis
    hue: str | None = None  # a matrix axis, or "metric" (all metrics in one panel); line figures only
    y: str | None = None  # heatmaps: the axis of the rows
    metrics: list[str] = Field(min_length=1)  # a heatmap shows one metric at the last evaluated epoch
    where: dict[str, Any] = {}  # axis -> label: only runs with these labels
    select: SelectSpec | None = None
    caption: str
    # A line figure over fewer x values than this repeats what the chapter's tables give (two evaluated epochs):
    # a profile that has fewer does not draw it, and its caption says why. 0: always drawn.
    min_x: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _kind(self) -> FigureSpec:
        if self.kind == "line" and self.hue is None:
            raise ConfigError(f"report.figures '{self.name}': a line figure needs 'hue' (an axis or 'metric')")
        if self.kind == "heatmap" and (self.y is None or len(self.metrics) != 1):
            raise ConfigError(f"report.figures '{self.name}': a heatmap needs 'y' (an axis) and exactly one metric")
        return self

    @property
    def epoch(self) -> str:
        """Curves over epochs show every epoch; anything else each run's last (figures.figure_data)."""
        return "all"

    def shown_metrics(self) -> list[str]:
        return list(self.metrics)

    def placed_axes(self) -> dict[str, str | None]:
        return {"x": self.x, "hue": self.hue, "y": self.y}


FIELD_TYPE, FIELD_DEFAULT = list[FigureSpec], []  # how ReportSpec holds this kind's items


def check(items: list[FigureSpec], checker: Checker) -> None:
    for i, item in enumerate(items):
        checker.grid_item(FIELD, i, item)


def stem(spec: FigureSpec) -> str:
    return f"figure_{spec.name}"


def write_one(chapter: Any, item: FigureSpec, facts: dict[str, Any]) -> list[str]:
    from harness.render import figures

    name = f"figure_{item.name}"
    if absent := chapter.absent(item.x, item.hue, item.y):
        return chapter.omitted(f"{name}.tex", absent)
    plot, chosen = figures.figure_data(chapter.frame, item, chapter.study.axes, chapter.names, chapter.baselines)
    if isinstance(plot, figures.Lines) and len(plot.x_order) < item.min_x:
        count = len(plot.x_order)
        return chapter.omitted(f"{name}.tex", [f"(its curves would have {count} point{'' if count == 1 else 's'} "
                                               "each, which the chapter's tables give; the study draws it from "
                                               f"{item.min_x} on)"])
    # shown at the text width (heatmaps at 0.6 of it: paper/templates/figure.tex.j2)
    figures.save_pdf(figures.draw(plot, item, chapter.names), chapter.folder / f"{name}.pdf",
                     width=0.6 if item.kind == "heatmap" else 1.0)
    return [f"{name}.pdf", chapter.write(f"{name}.tex", "figure.tex.j2", figure=item, facts=facts, chosen=chosen,
                                         runs=plot.runs,
                                         path=f"generated/{chapter.study.name}/{name}.pdf",
                                         baseline_note=figures.note(plot, item))]


write = each(write_one)


def runs_behind(spec: FigureSpec, frame: Any, profile: str, order: Any) -> set[str]:
    from harness.render.compare import rows_behind, selection_metrics

    return rows_behind(frame, selection_metrics(spec, spec.metrics), spec.where, [spec.x, spec.y, spec.hue])


def verify(spec: FigureSpec, rerun: Rerun) -> ItemCheck | None:
    """A figure's points: per plotted group (x, hue or y, metric) the mean over seeds, as its lines are drawn."""
    from harness import aggregate, units
    from harness.render import baselines, tables
    from harness.render.compare import CellDiff, ItemCheck, cell_words, interval, slack

    if not rerun.asked(spec.name):
        return None
    # A heatmap prints its squares with fewer decimals than a table: a move it cannot show is no change.
    item = ItemCheck(f"{rerun.study}/{spec.name}", NAME, units.PERCENT,
                     decimals=units.HEATMAP_DECIMALS if spec.kind == "heatmap" else units.DECIMALS, shows="percent")
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
        item.cells.append(CellDiff(cell_words(key, axes, rerun.names), *(interval(p.get(key)) for p in points),
                                   slack(rerun.tolerance, item)))
    if chosen[0] != chosen[1]:
        item.changes.append(f"chosen cell {chosen[0]} -> {chosen[1]}")
    return item
