"""Figures: what a figure shows (a pure function of a results frame and a FigureSpec), then its seaborn drawing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import aggregate
from harness.render.axes import axis_name, ordered
from harness.render.schema import FigureSpec
from harness.render.tables import Order, selected


@dataclass(frozen=True)
class Lines:
    """Metric curves: one line per hue label (or per metric), a band of one std over seeds."""

    data: pd.DataFrame  # long rows; a categorical x is replaced by its position in x_order
    x_order: list[Any]
    hue_order: list[Any]
    numeric_x: bool
    by_metric: bool  # hue is "metric": every metric in one panel, else one panel per metric


@dataclass(frozen=True)
class Heatmap:
    grid: pd.DataFrame  # mean over seeds in percent: y labels down, x labels across, both in declared order


def figure_data(frame: pd.DataFrame, spec: FigureSpec, order: Order,
                names: Mapping[str, str] | None = None) -> tuple[Lines | Heatmap, str | None]:
    """What the figure draws, and the grid cell its `select` chose in words (None without one)."""
    # Anything but a curve over epochs shows each run's last evaluated epoch.
    data = aggregate.restrict(frame, spec.metrics, spec.where, "all" if spec.x == "epoch" else "last")
    data, chosen = selected(frame, data, spec.select, names or {})
    plot = heatmap_data(data, spec, order) if spec.kind == "heatmap" else lines_data(data, spec, order)
    return plot, chosen


def lines_data(data: pd.DataFrame, spec: FigureSpec, order: Order) -> Lines:
    data = data.copy()
    x_order = ordered(data[spec.x].dropna().tolist(), order.get(spec.x))
    numeric_x = pd.api.types.is_numeric_dtype(data[spec.x])
    if not numeric_x:  # categorical x (e.g. "20-80"): plotted at positions, in the declared order
        position = {label: i for i, label in enumerate(x_order)}
        data[spec.x] = data[spec.x].map(position)
    by_metric = spec.hue == "metric"
    hue_order = list(spec.metrics) if by_metric else ordered(data[spec.hue].tolist(), order.get(spec.hue))
    return Lines(data, x_order, hue_order, numeric_x, by_metric)


def heatmap_data(data: pd.DataFrame, spec: FigureSpec, order: Order) -> Heatmap:
    summary = aggregate.summarise(data.dropna(subset=[spec.x, spec.y]), [spec.y, spec.x])
    grid = summary.pivot(index=spec.y, columns=spec.x, values="mean")
    grid = grid.reindex(index=ordered(list(grid.index), order.get(spec.y)),
                        columns=ordered(list(grid.columns), order.get(spec.x))) * 100.0
    return Heatmap(grid)


def _seaborn() -> Any:
    """seaborn on a file-only backend, themed for print; imported here so loading this module stays cheap."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid")
    return sns


def draw(plot: Lines | Heatmap, spec: FigureSpec, names: Mapping[str, str]) -> Any:
    """A matplotlib Figure of the plot."""
    if isinstance(plot, Heatmap):
        return draw_heatmap(plot, spec, names)
    return draw_lines(plot, spec, names)


def draw_heatmap(plot: Heatmap, spec: FigureSpec, names: Mapping[str, str]) -> Any:
    sns = _seaborn()
    import matplotlib.pyplot as plt

    rows, columns = plot.grid.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * columns, 0.8 + 0.6 * rows))
    sns.heatmap(plot.grid, annot=True, fmt=".1f", cmap="viridis", cbar_kws={"label": f"{spec.metrics[0]} (%)"},
                ax=ax)
    ax.set_xlabel(axis_name(spec.x, names))
    ax.set_ylabel(axis_name(spec.y, names))
    return fig


def draw_lines(plot: Lines, spec: FigureSpec, names: Mapping[str, str]) -> Any:
    sns = _seaborn()
    import matplotlib.ticker

    panels = {} if plot.by_metric else {"col": "metric", "col_order": spec.metrics}
    grid = sns.relplot(data=plot.data, x=spec.x, y="value", hue=spec.hue, hue_order=plot.hue_order, **panels,
                       kind="line", errorbar="sd", marker="o", facet_kws={"sharey": False},
                       height=3.0 if plot.by_metric else 2.4, aspect=1.5 if plot.by_metric else 1.1)
    if not plot.by_metric:
        grid.set_titles("{col_name}")
    grid.set_axis_labels(axis_name(spec.x, names), "")
    for ax in grid.axes.flat:
        if not plot.numeric_x:
            ax.set_xticks(range(len(plot.x_order)), [str(v) for v in plot.x_order])
        elif spec.x == "epoch":  # evaluated epochs are spread like 1, 5, 10, 20, 50
            ax.set_xscale("log")
            ax.set_xticks(sorted(plot.data["epoch"].unique()))
            ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.minorticks_off()
    return grid.figure


def save_pdf(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    # No dates in the metadata, so the same records give the same bytes.
    fig.savefig(path, metadata={"CreationDate": None, "ModDate": None}, bbox_inches="tight")
    plt.close(fig)
