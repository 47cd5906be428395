"""What tables and figures show, on hand-made frames and specs: cell texts, bold, failed cells, `where`, `epoch: last`,
the chosen grid cell, axis order, the original's numbers beside ours; and the setup facts read from records."""

from __future__ import annotations

import pandas as pd
import pytest

from harness import identity, store
from harness.errors import HarnessError
from harness.render import figures, tables
from harness.render.axes import label_text, ordered
from harness.render.facts import failed_axes, setup_facts
from harness.render.latex import latex_escape
from harness.report import Comparison, FigureSpec, ReferenceSpec, SelectSpec, TableSpec
from tests.conftest import frame, pm


def runs(axis: str, values: dict, metric: str = "acc", epochs: tuple = (1,), **more_axes) -> list[tuple]:
    """Rows for label -> [value per seed] (the same value at every epoch unless a value is a per-epoch list)."""
    rows = []
    for label, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            for i, epoch in enumerate(epochs):
                v = value[i] if isinstance(value, list) else value
                rows.append(({axis: label, **more_axes}, f"{axis}={label}/{more_axes}/{seed}", seed, epoch, metric, v))
    return rows


def spec(**fields) -> TableSpec:
    return TableSpec(**{"name": "t", "metric": "acc", "rows": "loss", "columns": "epoch", "caption": "c", **fields})


def texts(table: tables.Table) -> dict:
    return {key: (cell.text, cell.best) for key, cell in table.cells.items()}


def test_cells_are_mean_and_95_interval_in_percent_and_bold_marks_only_a_clear_best():
    data = frame(runs("loss", {"a": [[0.80, 0.80], [0.82, 0.90]], "b": [[0.50, 0.82], [0.52, 0.84]]}, epochs=(1, 2)))
    out = tables.table(data, spec(), {"loss": ["a", "b"]})
    assert out.rows == ["a", "b"] and out.columns == [1, 2] and out.ns == [2]
    assert texts(out) == {("a", 1): (pm(0.80, 0.82), True),   # 79.6 > 52.4: clearly best (mean +- one s.d.)
                          ("b", 1): (pm(0.50, 0.52), False),
                          ("a", 2): (pm(0.80, 0.90), False),  # 77.9 < 84.7: within one std, no bold
                          ("b", 2): (pm(0.82, 0.84), False)}
    assert out.cells[("a", 1)].text == "81.00 $\\pm$ 12.71"  # t(0.975, 1) = 12.706 x s.d. 1.41 / sqrt(2)


def test_one_seed_shows_the_mean_alone_and_never_bold_and_percent_false_keeps_the_scale():
    data = frame(runs("loss", {"a": [0.9], "b": [0.1]}))
    out = tables.table(data, spec(percent=False), {})
    assert texts(out) == {("a", 1): ("0.90", False), ("b", 1): ("0.10", False)} and out.ns == [1]


def test_rows_follow_the_declared_order_and_undeclared_labels_sort_naturally():
    data = frame(runs("loss", {"a": [0.1], "b": [0.2], "c": [0.3]}))
    assert tables.table(data, spec(), {"loss": ["c", "a", "b"]}).rows == ["c", "a", "b"]
    data = frame(runs("split", {"100-0": [0.1], "10-90": [0.2], "9-91": [0.3]}))
    assert tables.table(data, spec(rows="split"), {}).rows == ["9-91", "10-90", "100-0"]
    assert ordered(["100-0", "10-90", "9-91", "b"], ["b"]) == ["b", "9-91", "10-90", "100-0"]
    assert ordered([5, 1, 10, 2.5], None) == [1, 2.5, 5, 10]


def test_a_cell_whose_runs_all_failed_says_failed_in_its_declared_place():
    data = frame(runs("batch", {6: [0.5, 0.6], 100: [0.7, 0.8]}, epochs=(2,), dataset="cub"))
    failed = [{"batch": 1, "dataset": "cub"}, {"batch": 1, "dataset": "cub"}]
    out = tables.table(data, spec(rows="batch", columns="dataset", epoch="last"), {"batch": [1, 6, 100]}, failed)
    assert out.rows == [1, 6, 100]
    assert out.cells[(1, "cub")].text == "failed" and not out.cells[(1, "cub")].best
    assert out.cells[(6, "cub")].text == pm(0.5, 0.6)
    by_epoch = tables.table(data, spec(rows="batch"), {}, failed)  # every epoch column of that row
    assert by_epoch.cells[(1, 2)].text == "failed"


def test_failed_runs_obey_the_tables_where_a_list_meaning_any():
    data = frame(runs("batch", {6: [0.5]}, dataset="cub"))
    failed = [{"batch": 1, "dataset": "cars"}]
    assert tables.table(data, spec(rows="batch", where={"dataset": "cub"}), {}, failed).rows == [6]
    out = tables.table(data, spec(rows="batch", where={"dataset": ["cub", "cars"]}), {}, failed)
    assert out.rows == [1, 6] and out.cells[(1, 1)].text == "failed"
    assert tables.table(data, spec(rows="batch"), {}, [{"dataset": "cub"}]).rows == [6]  # no row axis: not here


def test_where_keeps_runs_without_the_axis_and_filters_those_with_it():
    data = frame(runs("loss", {"contrastive": [0.5]}, dim=512) + runs("loss", {"contrastive": [0.9]}, dim=64)
                 + runs("loss", {"proxy_anchor": [0.7]}))
    out = tables.table(data, spec(where={"dim": 512}), {})
    assert texts(out) == {("contrastive", 1): ("50.00", False), ("proxy_anchor", 1): ("70.00", False)}


def test_epoch_last_takes_each_runs_last_evaluated_epoch():
    data = frame(runs("loss", {"a": [[0.2, 0.6]]}, epochs=(1, 10), dataset="cub"))
    assert tables.table(data, spec(columns="dataset", epoch="last"), {}).cells[("a", "cub")].text == "60.00"
    # Every epoch in one cell: the seed's value is the mean of its epochs (one seed: no interval; epochs are not
    # independent repetitions).
    assert tables.table(data, spec(columns="dataset"), {}).cells[("a", "cub")].text == "40.00"


def arcface_frame() -> pd.DataFrame:
    """Softmax beside an m x s grid; test accuracy prefers m 0.1, validation accuracy m 0.4, s 16."""
    rows = runs("head", {"softmax": [0.70, 0.72]}) + runs("head", {"softmax": [0.99, 0.99]}, metric="val_acc")
    for m, s, val, test in [(0.1, 2, 0.6, 0.95), (0.4, 16, 0.8, 0.60), (0.4, 2, 0.7, 0.50)]:
        rows += runs("head", {"arcface": [test, test]}, m=m, s=s)
        rows += runs("head", {"arcface": [val, val + 0.01]}, metric="val_acc", m=m, s=s)
    return frame(rows)


def test_select_keeps_the_cell_best_on_validation_and_the_baseline_and_names_it():
    select = SelectSpec(axes=["m", "s"], by="val_acc")
    out = tables.table(arcface_frame(), spec(rows="head", select=select), {"head": ["softmax", "arcface"]},
                       names={"m": "margin m", "s": "scale s"})
    assert out.rows == ["softmax", "arcface"]
    assert out.cells[("arcface", 1)].text == "60.00 $\\pm$ 0.00"  # (0.4, 16), not the test-best (0.1, 2)
    assert out.cells[("softmax", 1)].text == pm(0.70, 0.72)
    assert out.chosen == "margin m = 0.4, scale s = 16 (validation acc 80.50)"
    assert tables.table(arcface_frame(), spec(rows="head"), {}).chosen is None


def test_select_per_method_tunes_each_method_over_its_own_grid_on_validation():
    # Softmax tuned over the learning rate, ArcFace over (m, s): each keeps its own validation-best cell.
    rows = runs("head", {"softmax": [0.90, 0.90]}, lr=0.01) + runs("head", {"softmax": [0.5, 0.5]}, lr=0.1)
    rows += runs("head", {"softmax": [0.70, 0.71]}, metric="val_acc", lr=0.01)
    rows += runs("head", {"softmax": [0.80, 0.81]}, metric="val_acc", lr=0.1)  # validation prefers lr 0.1
    rows += runs("head", {"arcface": [0.6, 0.6]}, m=0.1, s=2) + runs("head", {"arcface": [0.7, 0.7]}, m=0.4, s=2)
    rows += runs("head", {"arcface": [0.9, 0.9]}, metric="val_acc", m=0.1, s=2)
    rows += runs("head", {"arcface": [0.1, 0.1]}, metric="val_acc", m=0.4, s=2)
    rows += [({"baseline": "raw_input"}, f"raw{seed}", seed, 0, "acc", 0.3) for seed in (0, 1)]
    select = SelectSpec(axes=["m", "s", "lr"], by="val_acc", per="head")
    out = tables.table(frame(rows), spec(rows="head", select=select), {"head": ["softmax", "arcface"]})
    assert out.cells[("softmax", 1)].text == "50.00 $\\pm$ 0.00"  # lr 0.1, chosen on validation, not the test
    assert out.cells[("arcface", 1)].text == "60.00 $\\pm$ 0.00"  # (0.1, 2)
    assert out.chosen == "softmax: lr = 0.1 (validation acc 80.50); arcface: m = 0.1, s = 2 (validation acc 90.00)"
    with pytest.raises(HarnessError, match="select.per"):
        tables.table(frame(rows), spec(rows="head", select=SelectSpec(axes=["m"], by="val_acc", per="nope")), {})


def test_figures_show_the_declared_order_and_the_chosen_cell():
    data = arcface_frame()
    heat = FigureSpec(name="grid", kind="heatmap", x="s", y="m", metrics=["acc"], where={"head": "arcface"},
                      caption="c")
    plot, chosen = figures.figure_data(data, heat, {"m": [0.4, 0.1], "s": [16, 2]})
    assert chosen is None and list(plot.grid.index) == [0.4, 0.1] and list(plot.grid.columns) == [16, 2]
    assert plot.grid.loc[0.4, 16] == pytest.approx(60.0) and pd.isna(plot.grid.loc[0.1, 16])
    lines = FigureSpec(name="best", x="epoch", hue="head", metrics=["acc"], caption="c",
                       select=SelectSpec(axes=["m", "s"], by="val_acc"))
    plot, chosen = figures.figure_data(data, lines, {"head": ["softmax", "arcface"]})
    assert chosen == "m = 0.4, s = 16 (validation acc 80.50)" and plot.hue_order == ["softmax", "arcface"]
    arcface = plot.data[plot.data["head"] == "arcface"]
    assert set(zip(arcface["m"], arcface["s"])) == {(0.4, 16)} and (plot.data["head"] == "softmax").any()


def test_a_categorical_x_is_plotted_at_its_declared_positions():
    data = frame(runs("split", {"100-0": [0.1], "20-80": [0.2], "60-40": [0.3]}))
    spec_ = FigureSpec(name="f", x="split", hue="metric", metrics=["acc"], caption="c")
    plot, _ = figures.figure_data(data, spec_, {"split": ["20-80", "60-40", "100-0"]})
    assert plot.x_order == ["20-80", "60-40", "100-0"] and not plot.numeric_x and plot.by_metric
    assert dict(zip(plot.data["value"], plot.data["split"])) == {0.2: 0, 0.3: 1, 0.1: 2}


def reference_spec(**fields) -> ReferenceSpec:
    return ReferenceSpec(**{"file": "x.csv", "source": "s", "setting": "s", "dataset": "mnist", **fields})


def test_reference_by_epoch_puts_their_numbers_beside_ours():
    original = pd.DataFrame({"head": ["softmax_ce", "softmax_ce", "arcface", "arcface"], "epoch": [1, 5, 1, 5],
                             "pct": [88.03, 96.19, 92.63, 97.1]})
    ours = frame(runs("head", {"softmax": [[0.50, 0.70], [0.52, 0.72]]}, epochs=(1, 2))
                 + runs("head", {"arcface": [[0.6, 0.8], [0.6, 0.8]]}, epochs=(1, 2), m=0.4)
                 + runs("head", {"arcface": [[0.1, 0.1]]}, epochs=(1, 2), m=0.1))
    ref = reference_spec(metric="acc", value_column="pct", axis="head", rows="head", columns="epoch",
                         row_map={"softmax_ce": "softmax"}, where={"m": 0.4})
    out = tables.reference(ours, ref, original, {"head": ["softmax", "arcface"]})
    assert out.their_cols == [1, 5] and out.our_cols == [1, 2]
    assert out.body == [
        {"label": "softmax", "theirs": ["88.03", "96.19"], "ours": [pm(0.50, 0.52), pm(0.70, 0.72)]},
        {"label": "arcface", "theirs": ["92.63", "97.10"], "ours": ["60.00 $\\pm$ 0.00", "80.00 $\\pm$ 0.00"]}]


def test_reference_values_interleave_their_rows_and_ours_by_natural_order():
    original = pd.DataFrame({"split": ["10-90", "60-40", "100-0", "60-40"], "trip": [86.9, 88.01, 89.09, 1.0],
                             "few": [45.3187, 72.7345, None, 1.0], "net": ["r56", "r56", "r56", "other"]})
    ours = frame(runs("split", {"60-40": [0.95, 0.97], "100-0": [0.9, 0.9]}, epochs=(1, 2), metric="trip")
                 + runs("split", {"60-40": [0.3, 0.3]}, epochs=(1, 2), metric="episode"))
    ref = reference_spec(metric="trip", axis="split", rows="split", their_where={"net": "r56"}, percent_in_file=True,
                         values=[Comparison(theirs="trip", ours="trip", label="triplet"),
                                 Comparison(theirs="few", ours="few", label="few-shot"),
                                 Comparison(theirs=None, ours="episode", label="1-shot")])
    out = tables.reference(ours, ref, original, {"split": ["60-40", "100-0"]})
    assert out.their_cols == ["triplet", "few-shot"] and out.our_cols == ["triplet", "few-shot", "1-shot"]
    assert [row["label"] for row in out.body] == ["10-90", "60-40", "100-0"]
    assert out.body[0] == {"label": "10-90", "theirs": ["86.90", "45.32"], "ours": ["--", "--", "--"]}
    assert out.body[1] == {"label": "60-40", "theirs": ["88.01", "72.73"],
                           "ours": [pm(0.95, 0.97), "--", "30.00 $\\pm$ 0.00"]}
    assert out.body[2]["theirs"] == ["89.09", "--"]


def record(axes: dict, seed: int, *, status: str = "ok", commit: str = "abcdef0123456789", dirty: bool = False,
           message: str = "no positive pair", dataset: str = "fashion_mnist") -> store.RunRecord:
    config = {"seed": seed, "cell": axes, "data": {"dataset": dataset}, "model": {"name": "convnet"},
              "optimizer": {"name": "adam", "lr": 0.001},
              "train": {"batch_size": 64, "epochs": 2, "eval_epochs": [1, 2]}}
    ok = status == "ok"
    return store.validate({
        "schema_version": 2, "run_id": identity.run_id(config), "study": "s", "profile": "quick", "axes": axes,
        "seed": seed, "config": config, "status": status, "metrics": [{"epoch": 2, "acc": 0.5}] if ok else [],
        "loss_curve": [], "error": None if ok else {"type": "RuntimeError", "message": message},
        "data": {"train_size": 100, "test_size": 50, "num_classes": 10, "input_shape": [1, 28, 28],
                 "normalisation": {}} if ok else None,
        "timing": {"wall_s": 1800.0}, "provenance": {"git": {"commit": commit, "dirty": dirty},
                                                   "accelerate": {"device": "cpu"}}})


def test_setup_facts_are_read_from_the_records():
    records = [record({"batch": 6}, 0), record({"batch": 6}, 1, dirty=True, dataset="cub200"),
               record({"batch": 1}, 0, status="failed"), record({"batch": 1}, 1, status="failed"),
               record({"batch": 2}, 0, status="failed", message="NaN loss")]
    facts = setup_facts(records, "quick", "a stand-in")
    assert facts["runs"] == 2 and facts["failed"] == 3 and facts["seeds"] == [0, 1]
    assert facts["datasets"] == ["cub200", "fashion_mnist"] and facts["train_size"] == "100"
    assert facts["commits"] == ["abcdef0123", "abcdef0123+dirty"] and facts["devices"] == ["cpu"]
    assert facts["train_hours"] == pytest.approx(2.5)  # failed runs took time too
    assert facts["failures"] == [{"reason": "no positive pair", "cells": "batch 1"},
                                 {"reason": "NaN loss", "cells": "batch 2"}]
    assert failed_axes(records) == [{"batch": 1}, {"batch": 1}, {"batch": 2}]


def test_setup_facts_give_the_range_over_all_records_not_one_record():
    from harness.render.facts import span
    assert span([4000, 2000, 4000]) == "2,000 or 4,000" and span([1, 4, 16]) == "1, 4 or 16"
    assert span([100, 200, 300, 400, 500, 600]) == "100--600"  # more than four numbers: their range
    assert span([0.001, 0.0003]) == "0.0003 or 0.001" and span(["b", "a"]) == "a or b" and span([]) == ""
    records = [record({"dim": 32}, 0), record({"dim": 512}, 0)]
    records[1] = records[1].model_copy(update={"config": {**records[1].config, "model": {
        **records[1].config["model"], "embedding_dim": 512}}, "data": records[1].data.model_copy(
        update={"train_size": 3000})})
    facts = setup_facts(records, "quick", "d")
    assert facts["train_size"] == "100 or 3,000" and "512" in facts["embedding_dim"]


def test_figures_name_metrics_for_a_reader():
    from harness.render.axes import metric_name
    assert metric_name("unseen_episode_chance") == "unseen classes: chance, 1/N"
    assert metric_name("val_knn_accuracy") == "validation kNN accuracy" and metric_name("recall_at_4") == "Recall@4"
    assert metric_name("map_at_r") == "MAP@R" and metric_name("something_new") == "something new"


def test_labels_and_latex_text():
    assert label_text(2.0) == "2" and label_text(0.25) == "0.25" and label_text(["cub", 2.0]) == "cub or 2"
    assert latex_escape("proxy_anchor 50% & $x#{~^}\\") == \
        r"proxy\_anchor 50\% \& \$x\#\{\textasciitilde{}\textasciicircum{}\}\textbackslash{}"


def test_spread_adds_the_lowest_and_highest_single_run_and_one_seed_has_none():
    data = frame(runs("loss", {"a": [0.80, 0.90, 0.85], "b": [0.5]}))
    out = tables.table(data, spec(spread=True), {})
    assert out.cells[("a", 1)].text == pm(0.80, 0.90, 0.85) + " (runs 80.00--90.00)"
    assert out.cells[("b", 1)].text == "50.00"  # one run: no spread to show
    assert tables.table(data, spec(), {}).cells[("a", 1)].text == pm(0.80, 0.90, 0.85)


def test_an_epoch_rule_is_all_last_or_best_on_a_named_metric():
    assert spec(epoch="best:val_acc").epoch == "best:val_acc"
    for bad in ("first", "best:", "best"):
        with pytest.raises(ValueError, match="one of all, last, best:<metric>"):
            spec(epoch=bad)


def test_a_double_hyphen_stays_two_hyphens_so_commands_copied_from_the_pdf_work():
    assert latex_escape("harness run x --profile quick") == "harness run x -{}-profile quick"
    assert latex_escape("a---b") == "a-{}-{}-b" and latex_escape("30-40") == "30-40"


def test_a_cell_whose_seeds_disagree_widely_is_flagged_not_hidden():
    # a: sd 0.01 on a mean of 0.8 (1 %); b: one seed trained and one did not, sd 0.28 on 0.5 (57 %).
    data = frame(runs("loss", {"a": [0.79, 0.81], "b": [0.30, 0.70], "c": [0.8]}))
    out = tables.table(data, spec(), {"loss": ["a", "b", "c"]})
    assert [out.cells[(r, 1)].wild for r in ("a", "b", "c")] == [False, True, False]  # one seed: no spread
    assert tables.wild(pd.Series([0.5, 0.5 * (1 + 2 * tables.WILD_SD_SHARE)])) is True
