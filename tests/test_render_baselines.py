"""Baselines in tables, figures and captions, and the marks of a paired comparison with a reference row, on
hand-made frames: baseline runs (axis `baseline`: raw_input, untrained; one evaluation, after epoch 0) become
labelled rows placed first (or columns, when they differ by row), dashed reference lines, or caption words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import HarnessError
from scipy import stats

from harness import aggregate, identity, store
from harness.errors import ConfigError
from harness.render import baselines, figures, latex, tables
from harness.render.axes import chosen_words
from harness.render.baselines import Baseline
from harness.render.facts import planned_facts, runs_of, setup_facts
from harness.report import FigureSpec, ReportSpec, TableSpec, check_report
from tests.conftest import REPO, frame

RAW, UNTRAINED = Baseline("raw_input"), Baseline("untrained")


def trained(axis: str, values: dict, epochs: tuple = (1, 2), metric: str = "acc", **more_axes) -> list[tuple]:
    """label -> [value per seed] (the same at every epoch unless a value is a per-epoch list)."""
    rows = []
    for label, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            for i, epoch in enumerate(epochs):
                v = value[i] if isinstance(value, list) else value
                rows.append(({axis: label, **more_axes}, f"{label}/{more_axes}/{seed}", seed, epoch, metric, v))
    return rows


def baseline(label: str, per_seed: list[float], metric: str = "acc", **axes) -> list[tuple]:
    """A baseline's runs: one per seed, one evaluation after epoch 0."""
    return [({"baseline": label, **axes}, f"{label}/{axes}/{seed}", seed, 0, metric, v)
            for seed, v in enumerate(per_seed)]


def spec(**fields) -> TableSpec:
    return TableSpec(**{"name": "t", "metric": "acc", "rows": "loss", "columns": "epoch", "caption": "c", **fields})


def texts(table: tables.Table) -> dict:
    return {key: cell.text for key, cell in table.cells.items()}


def marks(table: tables.Table) -> dict:
    return {key: cell.mark for key, cell in table.cells.items() if cell.mark}


LOSSES = trained("loss", {"a": [0.80, 0.82, 0.81], "b": [0.70, 0.75, 0.72]})
BASELINES = frame(baseline("untrained", [0.50, 0.52, 0.51]) + baseline("raw_input", [0.78, 0.78, 0.78]))


def test_names_readers_see():
    assert baselines.name("raw_input") == "raw input" and baselines.name("untrained") == "untrained network"
    assert baselines.name("my_own") == "my_own" and str(Baseline("raw_input", "cub")) == "raw input (cub)"


def test_baselines_are_rows_placed_first_with_their_value_in_every_epoch_column():
    out = tables.table(frame(LOSSES), spec(), {"loss": ["a", "b"]}, baseline_runs=BASELINES)
    assert out.baseline_rows == [RAW, UNTRAINED] and out.rows == ["a", "b"] and out.columns == [1, 2]
    assert out.baseline_columns == []
    raw = "78.00 $\\pm$ 0.00"
    assert texts(out)[(RAW, 1)] == texts(out)[(RAW, 2)] == raw
    mean, half = 0.51, stats.t.ppf(0.975, 2) * np.std([0.50, 0.52, 0.51], ddof=1) / np.sqrt(3)
    assert texts(out)[(UNTRAINED, 2)] == f"{mean * 100:.2f} $\\pm$ {half * 100:.2f}"
    assert out.ns == [3]
    note = baselines.table_note(out.baseline_rows, out.baseline_columns, epoch_columns=True)
    assert note.startswith("Rows in italics (first): baselines that do not train, raw input and untrained network")
    assert "initialisation" not in note  # what each baseline is, the reading guide says once
    assert "one value, after epoch 0, shown in every epoch column" in note


def test_a_table_without_baselines_has_none_and_says_nothing():
    for runs in (None, pd.DataFrame(), frame(baseline("raw_input", [0.7], metric="other"))):
        out = tables.table(frame(LOSSES), spec(), {}, baseline_runs=runs)
        assert out.baseline_rows == [] and out.baseline_columns == [] and set(out.cells) == {
            (r, c) for r in ["a", "b"] for c in [1, 2]}
    assert baselines.table_note([], [], True) == ""


def test_baselines_obey_the_where_filter_and_the_column_axis():
    runs = frame(trained("dim", {32: [0.6, 0.62], 512: [0.7, 0.72]}, epochs=(8,), dataset="cub")
                 + trained("dim", {32: [0.4, 0.41]}, epochs=(8,), dataset="cars"))
    base = frame(baseline("raw_input", [0.9, 0.9], dataset="cub") + baseline("raw_input", [0.3, 0.3], dataset="cars")
                 + baseline("untrained", [0.5, 0.5], dataset="sop")  # a dataset this table has no column for
                 + baseline("raw_input", [0.1, 0.1], dataset="cub", dim=64))  # a where it fails
    out = tables.table(runs, spec(rows="dim", columns="dataset", epoch="last", where={"dim": [32, 512]}),
                       {"dataset": ["cub", "cars"]}, baseline_runs=base)
    assert out.columns == ["cub", "cars"] and out.baseline_rows == [RAW]
    assert texts(out)[(RAW, "cub")] == "90.00 $\\pm$ 0.00" and texts(out)[(RAW, "cars")] == "30.00 $\\pm$ 0.00"
    # A baseline without the column axis applies to every column.
    out = tables.table(runs, spec(rows="dim", columns="dataset", epoch="last"), {},
                       baseline_runs=frame(baseline("untrained", [0.5, 0.6])))
    assert texts(out)[(UNTRAINED, "cub")] == texts(out)[(UNTRAINED, "cars")]
    # where names an axis the baseline lacks: it is kept (it is outside that grid, not excluded by it)
    out = tables.table(runs, spec(rows="dim", columns="dataset", where={"dim": 512}), {},
                       baseline_runs=frame(baseline("untrained", [0.5, 0.6])))
    assert out.baseline_rows == [UNTRAINED] and out.rows == [512]


def test_baselines_that_differ_by_row_are_columns_placed_first():
    """one_shot: a baseline per split (another split is another task), so it cannot be one row."""
    runs = frame(trained("split", {"20-80": [0.30, 0.32], "60-40": [0.60, 0.62]}, epochs=(4, 8)))
    base = frame(baseline("raw_input", [0.48, 0.48], split="20-80") + baseline("raw_input", [0.69, 0.69], split="60-40")
                 + baseline("untrained", [0.33, 0.35], split="20-80"))
    out = tables.table(runs, spec(rows="split"), {"split": ["20-80", "60-40"]}, baseline_runs=base)
    assert out.baseline_rows == [] and out.baseline_columns == [RAW, UNTRAINED]
    assert texts(out)[("20-80", RAW)] == "48.00 $\\pm$ 0.00" and texts(out)[("60-40", RAW)] == "69.00 $\\pm$ 0.00"
    assert texts(out)[("60-40", UNTRAINED)] == "--"
    assert "one value per row" in baselines.table_note(out.baseline_rows, out.baseline_columns, True)


def test_baseline_runs_in_the_trained_frame_never_mix_into_trained_cells():
    """A caller that passes one frame with both: baselines carrying the row axis stay out of the trained cells."""
    mixed = frame(trained("split", {"20-80": [0.30, 0.32]}, epochs=(4,)) + baseline("raw_input", [0.9, 0.9],
                                                                                    split="20-80"))
    out = tables.table(mixed, spec(rows="split"), {})
    assert out.columns == [4] and texts(out) == {("20-80", 4): f"31.00 $\\pm$ {stats.t.ppf(0.975, 1) * 1:.2f}"}


# --- compare_to: paired differences by seed, within a column ---------------------------------------------------------

def test_compare_to_a_baseline_marks_cells_whose_paired_interval_excludes_zero():
    runs = frame(trained("loss", {"better": [0.85, 0.86, 0.87], "noisy": [0.70, 0.90, 0.80],
                                  "worse": [0.60, 0.61, 0.62]}, epochs=(1,)))
    base = frame(baseline("raw_input", [0.78, 0.79, 0.80]) + baseline("untrained", [0.50, 0.52, 0.51]))
    out = tables.table(runs, spec(compare_to="raw_input"), {}, baseline_runs=base)
    assert out.compare_to == "raw input" and out.compare_found and not out.compare_in_row
    # noisy: paired differences -0.08, +0.11, 0.00 -> interval includes 0 -> no mark
    assert marks(out) == {("better", 1): 1, ("worse", 1): -1, (UNTRAINED, 1): -1}
    assert not any(cell.best for cell in out.cells.values())  # a reference replaces the clearly-best bold
    noisy = aggregate.paired_difference({0: 0.70, 1: 0.90, 2: 0.80}, {0: 0.78, 1: 0.79, 2: 0.80})
    assert noisy.low < 0 < noisy.high


def test_compare_to_a_row_pairs_by_seed_and_drops_unpaired_seeds():
    rows = trained("loss", {"base": [0.80, 0.81, 0.82]}, epochs=(1,))
    # "other" has seeds 0, 1 (paired) and 5 (unpaired, would flip the sign if it counted).
    rows += [({"loss": "other"}, f"o{s}", s, 1, "acc", v) for s, v in [(0, 0.90), (1, 0.915), (5, 0.10)]]
    out = tables.table(frame(rows), spec(compare_to="base"), {"loss": ["base", "other"]})
    assert marks(out) == {("other", 1): 1}  # differences 0.100, 0.105 on seeds 0, 1
    # one paired seed: no mark
    rows = trained("loss", {"base": [0.80]}, epochs=(1,)) + trained("loss", {"other": [0.99, 0.99]}, epochs=(1,))
    assert marks(tables.table(frame(rows), spec(compare_to="base"), {})) == {}


def test_compare_to_never_compares_across_columns():
    """Epoch 1 of 'other' is far below the reference's epoch 2 but equal to its epoch 1: no mark at epoch 1."""
    runs = frame(trained("loss", {"base": [[0.50, 0.90], [0.51, 0.91], [0.52, 0.92]],
                                  "other": [[0.50, 0.60], [0.51, 0.61], [0.52, 0.62]]}))
    out = tables.table(runs, spec(compare_to="base"), {"loss": ["base", "other"]})
    assert marks(out) == {("other", 2): -1}


def test_compare_to_a_baseline_column_compares_within_the_row():
    runs = frame(trained("split", {"20-80": [0.30, 0.31, 0.32], "60-40": [0.75, 0.76, 0.77]}, epochs=(4,)))
    base = frame(baseline("raw_input", [0.48, 0.48, 0.48], split="20-80")
                 + baseline("raw_input", [0.70, 0.70, 0.70], split="60-40"))
    out = tables.table(runs, spec(rows="split", compare_to="raw_input"), {}, baseline_runs=base)
    assert out.compare_in_row and marks(out) == {("20-80", 4): -1, ("60-40", 4): 1}


def test_a_named_reference_absent_from_the_table_marks_nothing():
    out = tables.table(frame(LOSSES), spec(compare_to="raw_input"), {})  # no baselines recorded yet
    assert out.compare_to == "raw input" and not out.compare_found
    assert not any(cell.best or cell.mark for cell in out.cells.values())


def test_without_compare_to_bold_marks_a_clear_best_baselines_included():
    runs = frame(trained("loss", {"a": [0.80, 0.81], "b": [0.50, 0.51]}, epochs=(1,)))
    out = tables.table(runs, spec(), {})
    assert out.cells[("a", 1)].best
    out = tables.table(runs, spec(), {}, baseline_runs=frame(baseline("raw_input", [0.95, 0.96])))
    assert out.cells[(RAW, 1)].best and not out.cells[("a", 1)].best  # no learning beats what learning got


# --- the template ---------------------------------------------------------------------------------------------

def render_table(table: tables.Table, item: TableSpec, **extra) -> str:
    env = latex.environment(REPO / "paper" / "templates")
    facts = {"profile": "quick", "description": "d"}
    return env.get_template("table.tex.j2").render(
        study="s", table=item, rows=table.rows, columns=table.columns, cells=table.cells, facts=facts, ns=table.ns,
        row_label="loss", column_label="epoch", chosen=table.chosen, baseline_rows=table.baseline_rows,
        baseline_columns=table.baseline_columns, compare_to=table.compare_to, compare_in_row=table.compare_in_row,
        compare_found=table.compare_found,
        baseline_note=baselines.table_note(table.baseline_rows, table.baseline_columns, True), **extra)


def test_the_template_puts_baseline_rows_first_then_a_rule_and_marks_with_arrows():
    runs = frame(trained("loss", {"a": [0.85, 0.86, 0.87], "b": [0.60, 0.61, 0.62]}, epochs=(1,)))
    item = spec(compare_to="raw_input")
    text = render_table(tables.table(runs, item, {}, baseline_runs=BASELINES), item)
    body = text[text.index("\\midrule"):]
    assert body.splitlines()[1].startswith("\\textit{raw input} & 78.00")
    assert body.splitlines()[2].startswith("\\textit{untrained network} & ")
    assert body.splitlines()[3] == "\\midrule" and body.splitlines()[4].startswith("\\texttt{a} & ")
    assert "$^{\\uparrow}$" in body.splitlines()[4] and "$^{\\downarrow}$" in body.splitlines()[5]
    assert "above/below \\emph{raw input} in the same column (paired by seed" in text
    assert "Mean $\\pm$ half-width of its 95\\,\\% t-interval over 3 seeds per cell" in text


def test_the_template_puts_baseline_columns_first_under_their_own_header():
    runs = frame(trained("split", {"20-80": [0.30, 0.31]}, epochs=(4, 8)))
    base = frame(baseline("raw_input", [0.48, 0.48], split="20-80"))
    item = spec(rows="split")
    text = render_table(tables.table(runs, item, {}, baseline_runs=base), item)
    assert "& \\multicolumn{1}{c}{no training} & \\multicolumn{2}{c}{epoch} \\\\" in text
    assert "\\cmidrule(lr){2-2}\\cmidrule(lr){3-4}" in text and " & \\textit{raw input} & 4 & 8 \\\\" in text
    assert "\\texttt{20-80} & 48.00 $\\pm$ 0.00 & " in text


# --- figures ----------------------------------------------------------------------------------------------------

def test_line_figures_get_each_baseline_as_a_horizontal_line_per_metric():
    runs = frame(trained("loss", {"a": [0.8, 0.82]}) + trained("loss", {"a": [0.4, 0.42]}, metric="map"))
    base = frame(baseline("raw_input", [0.7, 0.7]) + baseline("raw_input", [0.3, 0.3], metric="map")
                 + baseline("untrained", [0.5, 0.6]))
    item = FigureSpec(name="f", x="epoch", hue="loss", metrics=["acc", "map"], caption="c")
    plot, _ = figures.figure_data(runs, item, {}, baseline_runs=base)
    assert [(r.label, r.metric, r.hue, r.x, r.y) for r in plot.references] == [
        ("raw_input", "acc", None, None, [0.7]), ("raw_input", "map", None, None, [0.3]),
        ("untrained", "acc", None, None, [pytest.approx(0.55)])]
    assert set(plot.data["loss"]) == {"a"}  # the baselines are not curves
    assert figures.note(plot, item) == "Dashed lines: baselines that do not train, raw input and untrained network."
    assert plot.runs == 2 + 4  # the caption counts the runs plotted: two trained, four baseline runs
    fig = figures.draw(plot, item, {})
    dashed = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() not in ("-", "None")]
    assert len(dashed) == 3
    # Drawn in percent, as the tables print them, with the axis and panels named for a reader.
    assert sorted(round(line.get_ydata()[0], 6) for line in dashed) == [30.0, 55.0, 70.0]
    assert [ax.get_ylabel() for ax in fig.axes[:1]] == ["percent"] and fig.axes[0].get_title() == "acc"
    # one legend below the panels: the hue's lines, then the baselines (drawn at print size, not beside)
    assert [t.get_text() for t in fig.legends[-1].get_texts()] == ["a", "raw input, no training",
                                                                  "untrained network, no training"]
    assert len(fig.legends) == 1 and fig.get_size_inches()[0] <= figures.TEXT_WIDTH_PT / 72
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_a_baseline_that_differs_along_x_or_by_hue_follows_it():
    runs = frame(trained("split", {"20-80": [0.3, 0.32], "60-40": [0.6, 0.62]}, epochs=(12,)))
    base = frame(baseline("raw_input", [0.48, 0.48], split="20-80")
                 + baseline("raw_input", [0.69, 0.69], split="60-40"))
    item = FigureSpec(name="f", x="split", hue="metric", metrics=["acc"], caption="c")
    plot, _ = figures.figure_data(runs, item, {"split": ["20-80", "60-40"]}, baseline_runs=base)
    (ref,) = plot.references
    assert ref.x == [0, 1] and ref.y == [pytest.approx(0.48), pytest.approx(0.69)] and ref.hue == "acc"
    runs = frame(trained("dim", {32: [0.6], 512: [0.7]}, epochs=(8,), dataset="cub"))
    base = frame(baseline("untrained", [0.5], dataset="cub") + baseline("untrained", [0.2], dataset="cars"))
    item = FigureSpec(name="f", x="dim", hue="dataset", metrics=["acc"], caption="c")
    plot, _ = figures.figure_data(runs, item, {"dataset": ["cub", "cars"]}, baseline_runs=base)
    assert [(r.hue, r.x, r.y, r.name) for r in plot.references] == [
        ("cub", None, [0.5], "untrained network (cub)"), ("cars", None, [0.2], "untrained network (cars)")]


def test_every_figure_prints_its_text_at_seven_points_or_more(tmp_path):
    """A figure is saved only if its smallest text prints at 7 pt or more at its width in the paper; a figure
    drawn too wide for its text is refused, naming the file and the text."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 3))  # twice the text width: shrunk by half in the paper
    ax.set_xlabel("epoch", fontsize=10)
    with pytest.raises(HarnessError, match=r"figure\.pdf: its text '.+' prints at [3-6]\.\d pt \(at 1 x the text "
                                           r"width\), below 7 pt"):
        figures.save_pdf(fig, tmp_path / "figure.pdf")
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_xlabel("epoch", fontsize=8)
    figures.save_pdf(fig, tmp_path / "ok.pdf")
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_xlabel("epoch", fontsize=8)
    with pytest.raises(HarnessError, match="at 0.6 x the text width"):
        figures.save_pdf(fig, tmp_path / "heatmap.pdf", width=0.6)  # shown at 0.6 of the width: too small


def test_a_line_figure_without_baselines_has_no_references_and_an_epoch_zero_gets_a_symlog_axis():
    runs = frame(trained("loss", {"a": [0.8, 0.82]}, epochs=(0, 1, 5)))
    item = FigureSpec(name="f", x="epoch", hue="loss", metrics=["acc"], caption="c")
    plot, _ = figures.figure_data(runs, item, {})
    assert plot.references == [] and figures.note(plot, item) == ""
    fig = figures.draw(plot, item, {})
    assert fig.axes[0].get_xscale() == "symlog" and len(fig.legends) == 1
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_heatmaps_name_the_baselines_in_the_caption():
    runs = frame(trained("m", {0.1: [0.7], 0.4: [0.8]}, epochs=(5,), s=16))
    base = frame(baseline("raw_input", [0.824, 0.824]) + baseline("untrained", [0.1, 0.12]))
    item = FigureSpec(name="g", kind="heatmap", x="s", y="m", metrics=["acc"], caption="c")
    plot, _ = figures.figure_data(runs, item, {}, {"m": "margin m"}, base)
    assert plot.words == ["raw input 82.40", "untrained network 11.00"]
    assert figures.note(plot, item) == (
        "Baselines that do not train (raw input and untrained network), acc in percent, mean over seeds: "
        "raw input 82.40; untrained network 11.00.")
    plot, _ = figures.figure_data(runs, item, {})
    assert plot.words == [] and figures.note(plot, item) == ""


def test_heatmap_words_name_the_labels_a_baseline_differs_by():
    base = frame(baseline("untrained", [0.5], m=0.4) + baseline("untrained", [0.3], m=0.1))
    words = baselines.summary_words(base, ["s", "m"], {"m": [0.1, 0.4]}, {"m": "margin m"}, 100.0)
    assert words == ["untrained network (margin m = 0.1) 30.00", "untrained network (margin m = 0.4) 50.00"]


# --- the chosen cell, the setup facts, the schema ------------------------------------------------------------------

def test_chosen_words_report_a_tie_and_the_rule():
    choice = aggregate.Choice(("m", "s"), (0.25, 16), "val_acc", 0.804, ((0.4, 16),))
    assert chosen_words(choice, {"m": "margin m"}) == (
        "margin m = 0.25, s = 16 (validation acc 80.40; tied with margin m = 0.4, s = 16; ties broken by declared order)")
    assert chosen_words(aggregate.Choice(("m",), (0.25,), "val_acc", 0.804), {}) == "m = 0.25 (validation acc 80.40)"


def record(axes: dict, seed: int, model: str, epochs: int) -> store.RunRecord:
    config = {"seed": seed, "cell": axes, "data": {"dataset": "fashion_mnist"}, "model": {"name": model},
              "optimizer": {"name": "adam", "lr": 0.001},
              "train": {"batch_size": 64, "epochs": epochs, "eval_epochs": [epochs]}}
    return store.validate({
        "schema_version": 2, "run_id": identity.run_id(config), "study": "s", "profile": "quick", "axes": axes,
        "seed": seed, "config": config, "status": "ok", "metrics": [{"epoch": epochs, "acc": 0.5}],
        "loss_curve": [], "error": None,
        "data": {"train_size": 100, "test_size": 50, "num_classes": 10, "input_shape": [1, 28, 28],
                 "normalisation": {}},
        "timing": {"wall_s": 60.0}, "provenance": {"git": {"commit": "a" * 40, "dirty": False},
                                                 "accelerate": {"device": "cpu"}}})


def test_setup_facts_describe_the_trained_runs_and_name_the_baselines():
    records = [record({"baseline": "untrained"}, 0, "convnet", 0), record({"baseline": "raw_input"}, 0, "raw_input", 0),
               record({"loss": "a"}, 0, "convnet", 10)]
    facts = setup_facts(records, "quick", "d")
    assert facts["model"] == "convnet" and facts["epochs"] == "10" and facts["eval_epochs"] == ["10"]
    assert facts["baselines"] == ["raw input", "untrained network"] and facts["runs"] == 3
    assert setup_facts(records[2:], "quick", "d")["baselines"] == []


def test_compare_to_defaults_to_none_and_must_name_a_row_label_or_a_baseline(tmp_path: Path):
    assert spec().compare_to is None
    order = {"loss": ["a", "b"], "dim": [32, 512]}

    def check(**fields) -> None:
        report = ReportSpec(tables=[spec(metric="knn_accuracy", **fields)])
        check_report(tmp_path / "s.yaml", report, order, {*order, "split"})

    for ok in ("a", "raw_input", "untrained"):
        check(compare_to=ok)
    check(rows="dim", columns="epoch", compare_to=512)
    with pytest.raises(ConfigError, match=r"report.tables\[0\].compare_to: 'raw_inputs' is neither a label of the "
                                          r"row axis 'loss' nor a baseline \(did you mean 'raw_input'\?\); labels: "
                                          r"a, b, raw_input, untrained$"):
        check(compare_to="raw_inputs")
    with pytest.raises(ConfigError, match="'c' is neither"):
        check(compare_to="c")
    check(rows="split", compare_to="c")  # the row axis of another profile: that table is left out here
    own = {**order, "baseline": ["raw_input", "shuffled"]}
    report = ReportSpec(tables=[spec(metric="knn_accuracy", compare_to="shuffled")])  # a study's own baseline
    check_report(tmp_path / "s.yaml", report, own, set(own))


def test_epoch_lists_write_four_or_more_consecutive_epochs_as_a_range():
    assert runs_of([1, 2, 3, 4, 5, 10, 20, 21]) == ["1--5", "10", "20", "21"]
    assert runs_of([1, 2, 3]) == ["1", "2", "3"] and runs_of([]) == []


def test_the_full_profile_paragraph_is_read_from_the_full_profiles_resolved_configs():
    from harness import spec as study_spec

    full = study_spec.load("loss_epochs", "full", components=False)
    facts = planned_facts(full)
    assert facts["runs"] == len(full.runs) and facts["profile"] == "full"
    assert facts["dataset"] == "mnist" and facts["per_class"] == "all"
    assert facts["losses"] == sorted({run.config.loss["name"] for run in full.runs
                                      if "baseline" not in run.axes})
    assert facts["baselines"] == ["raw input", "untrained network"]
    assert facts["estimate"] is not None and facts["estimate"].unit == "GPU-hours"


def test_a_numeric_axis_spanning_more_than_ten_times_is_logarithmic():
    """Embedding sizes 32, 128, 512 were on a linear axis (the small ones crowded together)."""
    import matplotlib.pyplot as plt

    rows = []
    for dim, values in ((32, [0.5, 0.52]), (128, [0.6, 0.61]), (512, [0.62, 0.63])):
        rows += trained("dim", {dim: values})
    item = FigureSpec(name="f", x="dim", hue="metric", metrics=["acc"], caption="c")
    plot, _ = figures.figure_data(frame(rows), item, {})
    fig = figures.draw(plot, item, {})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["32", "128", "512"]
    plt.close(fig)
