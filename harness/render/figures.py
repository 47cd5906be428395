"""Figures: what a figure shows (a pure function of a results frame and a FigureSpec), then its seaborn drawing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import aggregate
from harness.errors import HarnessError
from harness.render import baselines
from harness.render.axes import axis_name, figure_label, metric_name, ordered
from harness.report import FigureSpec
from harness.render.tables import Order, selected
from harness import units


@dataclass(frozen=True)
class BaselineLine:
    """A baseline's line in a line figure: horizontal at y[0] (x None), or through (x, y) when the baseline
    differs along x (one_shot's split); on the panel of `metric`, in the colour of `hue` when it has one."""

    label: Any  # the baseline label (raw_input, untrained)
    metric: str
    hue: Any  # the hue label (or the metric, when hue is "metric") whose colour it takes; None: its own
    x: list[float] | None
    y: list[float]

    @property
    def name(self) -> str:
        if self.hue is None:
            return baselines.name(self.label)
        # coloured by its metric (every metric in one panel) or by a hue label
        return f"{baselines.name(self.label)} ({metric_name(self.hue) if self.hue == self.metric else figure_label(self.hue)})"


@dataclass(frozen=True)
class Lines:
    """Metric curves: one line per hue label (or per metric), a band of the 95 % t-interval over seeds (the
    tables' convention); baselines as dashed reference lines."""

    data: pd.DataFrame  # long rows; a categorical x is replaced by its position in x_order
    x_order: list[Any]
    hue_order: list[Any]
    numeric_x: bool
    by_metric: bool  # hue is "metric": every metric in one panel, else one panel per metric
    references: list[BaselineLine] = field(default_factory=list)
    runs: int = 0  # the runs plotted, baselines included (for the caption)


@dataclass(frozen=True)
class Heatmap:
    grid: pd.DataFrame  # mean over seeds in percent: y labels down, x labels across, both in declared order
    baselines: list[Any] = field(default_factory=list)  # the baseline labels present, in declared order
    words: list[str] = field(default_factory=list)  # 'raw input 82.40': their values, for the caption
    runs: int = 0  # the runs plotted, baselines included (for the caption)


def note(plot: Lines | Heatmap, spec: FigureSpec) -> str:
    """What the figure's caption says about its baselines ('' without any)."""
    if isinstance(plot, Heatmap):
        return baselines.figure_note(plot.baselines, plot.words, spec.metrics[0])
    return baselines.figure_note(list(dict.fromkeys(ref.label for ref in plot.references)))


def figure_data(frame: pd.DataFrame, spec: FigureSpec, order: Order, names: Mapping[str, str] | None = None,
                baseline_runs: pd.DataFrame | None = None) -> tuple[Lines | Heatmap, str | None]:
    """What the figure draws, and the grid cell its `select` chose in words (None without one). The baselines
    (`baseline_runs`) matching its `where` and metrics are reference lines, or words for a heatmap's caption."""
    frame = baselines.trained_only(frame)
    # Anything but a curve over epochs shows each run's last evaluated epoch.
    data = aggregate.restrict(frame, spec.metrics, spec.where, "all" if spec.x == "epoch" else "last")
    data, chosen = selected(frame, data, spec.select, names or {}, order)
    base = baselines.matching(baseline_runs, spec.metrics, spec.where)
    plotted = [data.dropna(subset=[a for a in (spec.x, spec.y) if a and a in data and a != "metric"])]
    runs = sum(part["run_id"].nunique() for part in [*plotted, base] if part is not None and not part.empty)
    if spec.kind == "heatmap":
        words = baselines.summary_words(base, [spec.x, spec.y], order, names or {}, units.PERCENT)
        return Heatmap(heatmap_data(data, spec, order).grid, baselines.labels(base, order), words, runs), chosen
    return dataclasses.replace(lines_data(data, spec, order, base), runs=runs), chosen


def lines_data(data: pd.DataFrame, spec: FigureSpec, order: Order, base: pd.DataFrame | None = None) -> Lines:
    data = data.copy()
    base = base if base is not None and not base.empty else None
    along_x = base is not None and spec.x != "epoch" and baselines.carries(base, spec.x)
    labels = data[spec.x].dropna().tolist() + (base[spec.x].dropna().tolist() if along_x else [])
    x_order = ordered(labels, order.get(spec.x))
    numeric_x = pd.api.types.is_numeric_dtype(data[spec.x])
    position = {label: i for i, label in enumerate(x_order)}
    if not numeric_x:  # categorical x (e.g. "20-80"): plotted at positions, in the declared order
        data[spec.x] = data[spec.x].map(position)
    by_metric = spec.hue == "metric"
    hue_order = list(spec.metrics) if by_metric else ordered(data[spec.hue].tolist(), order.get(spec.hue))
    references = [] if base is None else reference_lines(base, spec, order, None if numeric_x else position)
    return Lines(data, x_order, hue_order, numeric_x, by_metric, references)


def reference_lines(base: pd.DataFrame, spec: FigureSpec, order: Order,
                    position: Mapping[Any, int] | None) -> list[BaselineLine]:
    """One line per baseline and metric (and per hue label, when the baseline carries the hue axis): the mean
    over seeds, horizontal unless the baseline carries the x axis (then one point per x label)."""
    out = []
    for label in baselines.labels(base, order):
        for metric in spec.metrics:
            runs = base[(base[baselines.AXIS] == label) & (base["metric"] == metric)]
            if runs.empty:
                continue
            by_hue = spec.hue != "metric" and baselines.carries(runs, spec.hue)
            hues = ordered(runs[spec.hue].dropna().tolist(), order.get(spec.hue)) if by_hue else [None]
            for hue in hues:
                part = runs[runs[spec.hue] == hue] if by_hue else runs
                colour = hue if by_hue else (metric if spec.hue == "metric" else None)
                if spec.x != "epoch" and baselines.carries(part, spec.x):
                    xs = ordered(part[spec.x].dropna().tolist(), order.get(spec.x))
                    ys = [aggregate.seed_values(part[part[spec.x] == x]).mean() for x in xs]
                    out.append(BaselineLine(label, metric, colour, [position[x] if position else x for x in xs], ys))
                else:
                    out.append(BaselineLine(label, metric, colour, None, [aggregate.seed_values(part).mean()]))
    return out


def heatmap_data(data: pd.DataFrame, spec: FigureSpec, order: Order) -> Heatmap:
    summary = aggregate.summarise(data.dropna(subset=[spec.x, spec.y]), [spec.y, spec.x])
    grid = summary.pivot(index=spec.y, columns=spec.x, values="mean")
    grid = grid.reindex(index=ordered(list(grid.index), order.get(spec.y)),
                        columns=ordered(list(grid.columns), order.get(spec.x))) * units.PERCENT
    return Heatmap(grid)


def _seaborn() -> Any:
    """seaborn on a file-only backend, themed for print; imported here so loading this module stays cheap."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid")
    # TrueType (42), not Type 3: the PDF's figure text can be searched and measured, and venues accept it.
    matplotlib.rcParams["pdf.fonttype"] = 42
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
    sns.heatmap(plot.grid, annot=True, fmt=f".{units.HEATMAP_DECIMALS}f", cmap="viridis",
                cbar_kws={"label": f"{metric_name(spec.metrics[0])} (%)"}, ax=ax)
    ax.set_xlabel(axis_name(spec.x, names))
    ax.set_ylabel(axis_name(spec.y, names))
    return fig


def draw_lines(plot: Lines, spec: FigureSpec, names: Mapping[str, str]) -> Any:
    sns = _seaborn()
    import matplotlib.ticker

    # Drawn in percent (as the tables show them), metrics by their names; Lines keeps the records' keys.
    shown = plot.data.assign(value=plot.data["value"] * units.PERCENT, metric=plot.data["metric"].map(metric_name))
    hue_order = [metric_name(m) for m in plot.hue_order] if plot.by_metric else plot.hue_order
    panels = {} if plot.by_metric else {"col": "metric", "col_order": [metric_name(m) for m in spec.metrics]}
    # Drawn at the size the paper prints it (the text width), so its text prints at the size seaborn sets: the
    # panels share the width, and one legend goes below them rather than beside (where it would widen the figure).
    columns = 1 if plot.by_metric else len(spec.metrics)
    aspect = 1.5 if plot.by_metric else 1.1
    height = min(3.0 if plot.by_metric else 2.4, (TEXT_WIDTH_PT / 72 - 0.5) / (columns * aspect))
    grid = sns.relplot(data=shown, x=spec.x, y="value", hue=spec.hue, hue_order=hue_order, **panels,
                       kind="line", errorbar=aggregate.t_band, marker="o", facet_kws={"sharey": False},
                       height=height, aspect=aspect, legend="auto")
    if not plot.by_metric:
        grid.set_titles("{col_name}")
    grid.set_axis_labels(axis_name(spec.x, names), "percent")
    entries: dict[str, Any] = {}  # hue label -> its line: seaborn's legend, redrawn below the panels
    if grid.legend is not None:
        entries = {figure_label(text.get_text()): handle
                   for text, handle in zip(grid.legend.texts, grid.legend.legend_handles)}
        grid.legend.remove()
        grid._legend = None
    for ax in grid.axes.flat:
        if not plot.numeric_x:
            ax.set_xticks(range(len(plot.x_order)), [str(v) for v in plot.x_order])
        elif spec.x == "epoch":  # evaluated epochs are spread like 1, 5, 10, 20, 50
            epochs = sorted(plot.data["epoch"].unique())
            if epochs and epochs[0] <= 0:  # an evaluation after epoch 0: logarithmic from 1 on, linear below
                ax.set_xscale("symlog", linthresh=1.0)
            else:
                ax.set_xscale("log")
            ax.set_xticks(epochs)
            ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.minorticks_off()
        else:  # a numeric axis spanning more than 10x (embedding sizes 32 ... 512): logarithmic, ticks at its values
            values = sorted(v for v in plot.data[spec.x].dropna().unique())
            if values and values[0] > 0 and values[-1] / values[0] > 10:
                ax.set_xscale("log", base=2)
                ax.set_xticks(values, [figure_label(v) for v in values])
                ax.minorticks_off()
    if plot.references:
        entries.update(draw_references(grid, plot, spec, sns))
    if entries:
        longest = max(len(label) for label in entries)  # long labels in fewer columns: the legend stays as
        columns = 3 if longest <= 25 else 2 if longest <= 40 else 1  # wide as the panels, not wider
        grid.figure.legend(list(entries.values()), list(entries), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                           ncol=min(len(entries), columns), frameon=False,
                           title=None if plot.by_metric else axis_name(spec.hue, names))
    return grid.figure


DASHES = {"raw_input": (0, (5, 2)), "untrained": (0, (1, 1.5))}  # baseline label -> line style


def draw_references(grid: Any, plot: Lines, spec: FigureSpec, sns: Any) -> dict[str, Any]:
    """The baselines as dashed lines on their metric's panel; their legend entries ('raw input, no training'),
    one per baseline where the colour already says the metric (one panel of metrics), else one per line."""
    import matplotlib.lines

    palette = dict(zip(plot.hue_order, sns.color_palette(n_colors=len(plot.hue_order))))
    panels = {metric: grid.axes.flat[0] if plot.by_metric else grid.axes_dict.get(metric_name(metric))
              for metric in spec.metrics}
    handles = {}
    for ref in plot.references:
        ax = panels.get(ref.metric)
        if ax is None:
            continue
        style = {"color": palette.get(ref.hue, "0.25"), "linestyle": DASHES.get(ref.label, (0, (4, 1, 1, 1))),
                 "linewidth": 1.2, "zorder": 1.5}
        if ref.x is None:
            ax.axhline(ref.y[0] * units.PERCENT, **style)
        else:
            ax.plot(ref.x, [y * units.PERCENT for y in ref.y], **style)
        if plot.by_metric:  # the colour is the metric's: the entry names the baseline, in grey
            handles.setdefault(f"{baselines.name(ref.label)}, no training",
                               matplotlib.lines.Line2D([], [], **{**style, "color": "0.35"}))
        else:
            handles.setdefault(f"{ref.name}, no training", matplotlib.lines.Line2D([], [], **style))
    return handles


# The text width of paper/main.tex (A4, 2.5 cm margins: 160 mm), and the smallest text a figure may print.
TEXT_WIDTH_PT = 160 / 25.4 * 72
MIN_PRINTED_PT = 7.0


def printed_sizes(fig: Any, path: Path, width: float) -> list[tuple[float, str]]:
    """(printed size in pt, text) of every visible text of a saved figure shown at `width` x the text width: its
    font size scaled by how much the PDF page (its MediaBox) is shrunk or stretched to that width."""
    import matplotlib.text

    box = re.search(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", path.read_bytes())
    scale = width * TEXT_WIDTH_PT / (float(box.group(3)) - float(box.group(1)))
    return [(t.get_fontsize() * scale, t.get_text()) for t in fig.findobj(matplotlib.text.Text)
            if t.get_visible() and t.get_text().strip()]


def check_print_size(fig: Any, path: Path, width: float) -> None:
    """A figure whose smallest text prints below MIN_PRINTED_PT at its width in the paper is refused, naming it."""
    small = [(size, text) for size, text in printed_sizes(fig, path, width) if size < MIN_PRINTED_PT - 0.05]
    if small:
        size, text = min(small)
        raise HarnessError(f"{path}: its text {text[:40]!r} prints at {size:.1f} pt (at {width:g} x the text "
                           f"width), below {MIN_PRINTED_PT:g} pt ({len(small)} text(s) in all); enlarge the font "
                           "or draw the figure narrower")


def save_pdf(fig: Any, path: Path, width: float = 1.0) -> None:
    """Save a figure the paper shows at `width` x the text width; its text must print at MIN_PRINTED_PT or more."""
    import matplotlib.pyplot as plt

    try:
        # No dates in the metadata, so the same records give the same bytes.
        fig.savefig(path, metadata={"CreationDate": None, "ModDate": None}, bbox_inches="tight")
        check_print_size(fig, path, width)
    finally:
        plt.close(fig)


GLYPH_CLASSES = (100, 101, 102, 103, 104, 105)  # the first test classes of the class-disjoint stand-ins
GLYPH_IMAGES = 8


def glyph_examples(path: Path) -> dict[str, Any]:
    """The glyph stand-in as the networks see it: GLYPH_IMAGES test images of each of GLYPH_CLASSES (rows), drawn
    from the generator itself (harness.data.glyphs, the dataset's own seed) into `path`; what the caption says."""
    from harness import data
    from harness.data import glyphs

    _seaborn()
    import matplotlib.pyplot as plt

    split = data.load("glyphs").test  # the dataset as a run loads it (generated once per process)
    test, labels = split.images[:, 0].numpy(), split.labels.numpy()
    fig, axes = plt.subplots(len(GLYPH_CLASSES), GLYPH_IMAGES, figsize=(GLYPH_IMAGES * 0.6, len(GLYPH_CLASSES) * 0.6))
    for row, label in enumerate(GLYPH_CLASSES):
        images = test[labels == label][:GLYPH_IMAGES]
        for column, image in enumerate(images):
            ax = axes[row, column]
            ax.imshow(image, cmap="gray_r", vmin=float(test.min()), vmax=float(test.max()), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(str(label), rotation=0, ha="right", va="center", fontsize=9.5)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.12, right=0.99, top=0.99, bottom=0.01)
    fig.savefig(path)
    check_print_size(fig, path, 0.6)  # shown at 0.6 x the text width (paper/)
    plt.close(fig)
    return {"classes": list(GLYPH_CLASSES), "images": GLYPH_IMAGES, "seed": glyphs.GLYPHS.seed,
            "size": glyphs.SIZE}


KIND_TITLES = {"original": "the originals' claims", "hypothesis": "this thesis's hypotheses",
               "question": "the assignments' questions"}


def claims_forest(rows: list[dict[str, Any]], path: Path) -> int:
    """Every claim's difference (a - b, points) with its 95 % interval, one row per difference (a claim with
    `per` has one per label), grouped by kind, a line at 0: the cross-study summary the verdict table gives in
    words. `rows`: {kind, name, mean, low, high} in percent points. Returns the rows drawn."""
    _seaborn()
    import matplotlib.pyplot as plt

    ordered_rows = [r for kind in KIND_TITLES for r in rows if r["kind"] == kind]
    # 7 pt names 10 pt apart: the figure and its caption fit one page with every claim of the thesis
    height = 0.14 * len(ordered_rows) + 0.22 * len(KIND_TITLES) + 0.6
    fig, ax = plt.subplots(figsize=(6.3, height))
    y, ticks, labels, previous = 0.0, [], [], None
    for row in ordered_rows:
        if row["kind"] != previous:
            y -= 0.6 if previous is not None else 0.0
            ax.text(0.0, y + 0.55, KIND_TITLES[row["kind"]], transform=ax.get_yaxis_transform(), fontsize=8,
                    fontstyle="italic", ha="left")
            previous = row["kind"]
        ax.errorbar(row["mean"], y, xerr=[[row["mean"] - row["low"]], [row["high"] - row["mean"]]], fmt="o",
                    color="black", markersize=3, capsize=2, linewidth=0.8)
        ticks.append(y)
        labels.append(row["name"])
        y -= 1.0
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
    # a claim's name as the reader types it (make table T=...): code font, as in the text
    ax.set_yticks(ticks, labels, fontsize=7, fontfamily="monospace")
    ax.set_xlabel("a − b in points (95 % interval over seeds)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylim(y + 0.3, 1.2)
    fig.tight_layout()
    fig.savefig(path)
    check_print_size(fig, path, 1)  # shown at 1 x the text width (paper/)
    plt.close(fig)
    return len(ordered_rows)


PIPELINE = (  # (box text, what it is) from a declared experiment to this document
    ("experiments/\n<study>.yaml", "a declared\nexperiment: matrix,\nseeds, profiles,\nitems, claims"),
    ("harness run", "one run per cell\nand seed, from its\nresolved config"),
    ("results/<study>/\n<profile>/\n<run_id>.json", "one record a run:\nmetrics, config,\ncode, machine,\ndigest"),
    ("harness render", "tables, figures,\nfindings computed\nfrom the records"),
    ("paper/build/\nmain.pdf", "this document"),
)


def pipeline(path: Path) -> None:
    """How this document is made, as boxes and arrows: study file, runs, records, render, PDF; and the two
    commands that hold it to its records (check recomputes the claims, verify reruns runs)."""
    _seaborn()
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(6.3, 2.1))
    ax.set_xlim(0, len(PIPELINE))
    ax.set_ylim(0, 2.1)
    ax.axis("off")
    for i, (name, what) in enumerate(PIPELINE):
        ax.add_patch(FancyBboxPatch((i + 0.06, 1.05), 0.88, 0.7, boxstyle="round,pad=0.02", facecolor="#eef2f7",
                                    edgecolor="#4c6a92", linewidth=0.8))
        ax.text(i + 0.5, 1.4, name, ha="center", va="center", fontsize=7, family="monospace")
        ax.text(i + 0.5, 0.55, what, ha="center", va="center", fontsize=7, linespacing=1.3)
        if i < len(PIPELINE) - 1:
            ax.annotate("", xy=(i + 1.06, 1.4), xytext=(i + 0.94, 1.4),
                        arrowprops={"arrowstyle": "->", "color": "#4c6a92", "linewidth": 0.8})
    ax.annotate("", xy=(2.5, 1.78), xytext=(3.5, 1.78),
                arrowprops={"arrowstyle": "->", "color": "#a0522d", "linewidth": 0.8,
                            "connectionstyle": "arc3,rad=0.35"})
    ax.text(3.0, 2.05, "harness check recomputes every claim from the records; harness verify reruns runs",
            ha="center", va="center", fontsize=7, color="#a0522d")
    fig.savefig(path)
    check_print_size(fig, path, 1)  # shown at 1 x the text width (paper/)
    plt.close(fig)
