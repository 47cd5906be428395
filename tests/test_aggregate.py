"""harness.aggregate on hand-made records and frames: the long frame, restricting it, choosing a grid cell, summaries
and when a best mean is clearly best."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness import aggregate, identity, store
from harness.errors import HarnessError
from tests.conftest import frame


def record(axes: dict, seed: int, metrics: list[dict], status: str = "ok") -> store.RunRecord:
    config = {"seed": seed, "cell": axes}  # any config: the run_id is its hash
    return store.validate({
        "schema_version": 2, "run_id": identity.run_id(config), "study": "s", "profile": "quick", "axes": axes,
        "seed": seed, "config": config, "status": status, "metrics": metrics, "loss_curve": [],
        "error": {"type": "RuntimeError", "message": "no positive pair"} if status == "failed" else None,
        "timing": {"wall_s": 1.0}, "provenance": {"git": {}}})


def test_long_frame_has_one_row_per_run_epoch_and_metric_and_skips_failed_runs():
    runs = [record({"head": "arcface", "m": 0.4}, 0, [{"epoch": 1, "acc": 0.5, "knn": 0.4},
                                                       {"epoch": 2, "acc": 0.6, "knn": 0.45}]),
            record({"head": "softmax"}, 0, [{"epoch": 1, "acc": 0.3, "knn": 0.2}]),
            record({"head": "arcface", "m": 0.1}, 0, [], status="failed")]
    out = aggregate.long_frame(runs)
    assert len(out) == 6
    assert list(out.columns) == ["head", "m", "run_id", "seed", "epoch", "metric", "value"]
    assert set(out["run_id"]) == {runs[0].run_id, runs[1].run_id}
    softmax = out[out["head"] == "softmax"]
    assert softmax["m"].isna().all()  # a run outside the m axis: NaN, not dropped
    row = out[(out["run_id"] == runs[0].run_id) & (out["epoch"] == 2) & (out["metric"] == "knn")]
    assert row["value"].tolist() == [0.45]


def test_summarise_gives_mean_std_n_and_a_t_interval():
    data = frame([({"loss": "a"}, f"r{i}", i, 1, "acc", v) for i, v in enumerate([1.0, 2.0, 3.0])]
                 + [({"loss": "b"}, "r9", 0, 1, "acc", 5.0)])
    out = aggregate.summarise(data, ["loss"]).set_index("loss")
    assert out.loc["a", "mean"] == 2.0 and out.loc["a", "std"] == 1.0 and out.loc["a", "n"] == 3
    assert out.loc["a", "ci95"] == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3))
    assert out.loc["b", "n"] == 1 and math.isnan(out.loc["b", "std"]) and math.isnan(out.loc["b", "ci95"])


def test_summarise_of_nothing_has_the_columns():
    out = aggregate.summarise(pd.DataFrame(), ["loss", "epoch"])
    assert out.empty and list(out.columns) == ["loss", "epoch", "mean", "std", "n", "ci95"]


@pytest.mark.parametrize(("means", "stds", "ns", "best"), [
    ([0.9, 0.5, 0.6], [0.05, 0.05, 0.05], [3, 3, 3], 0),  # 95 % halves 0.124: 0.776 > 0.724, clearly best
    ([0.9, 0.5, 0.7], [0.05, 0.05, 0.05], [3, 3, 3], None),  # 0.776 < 0.824: the intervals overlap
    ([0.9, 0.5, 0.6], [0.05, 0.05, 0.05], [2, 2, 2], None),  # two seeds: halves 0.45, nothing is clear
    ([0.9, 0.5], [0.01, 0.01], [2, 1], None),  # a single seed cannot tell
    ([0.9, float("nan"), 0.5], [0.01, float("nan"), 0.01], [3, 0, 3], 0),  # an empty cell is no rival
    ([0.9, float("nan")], [0.01, float("nan")], [2, 0], None),  # nothing to beat
])
def test_clearly_best_needs_two_seeds_each_and_separate_95_percent_intervals(means, stds, ns, best):
    assert aggregate.clearly_best(means, stds, ns) == best


def test_restrict_keeps_runs_without_the_where_axis_and_a_list_means_any():
    data = frame([({"dataset": "cub", "dim": 512}, "r1", 0, 1, "recall", 0.1),
                  ({"dataset": "cars", "dim": 512}, "r2", 0, 1, "recall", 0.2),
                  ({"dataset": "sop", "dim": 512}, "r3", 0, 1, "recall", 0.3),
                  ({"dim": 64}, "r4", 0, 1, "recall", 0.4),
                  ({"dataset": "cub", "dim": 512}, "r1", 0, 1, "nmi", 0.5)])
    kept = aggregate.restrict(data, ["recall"], {"dataset": ["cub", "cars"]})
    assert kept["run_id"].tolist() == ["r1", "r2", "r4"]
    kept = aggregate.restrict(data, ["recall"], {"dataset": "cars", "dim": 512})
    assert kept["run_id"].tolist() == ["r2"]  # r4 has dim 64: excluded by the axis it has
    assert aggregate.restrict(data, ["recall"], {"absent_axis": "x"})["run_id"].tolist() == ["r1", "r2", "r3", "r4"]


def test_restrict_last_epoch_is_each_runs_own_last():
    data = frame([({}, "short", 0, 1, "acc", 0.1), ({}, "short", 0, 2, "acc", 0.2),
                  ({}, "long", 0, 2, "acc", 0.3), ({}, "long", 0, 5, "acc", 0.4)])
    last = aggregate.restrict(data, ["acc"], epoch="last")
    assert dict(zip(last["run_id"], last["epoch"])) == {"short": 2, "long": 5}


def grid() -> pd.DataFrame:
    """A softmax baseline beside an ArcFace m x s grid; the test metric prefers (0.1, 2), validation (0.4, 16)."""
    rows = [({"head": "softmax"}, "sm", 0, 5, "val_acc", 0.99), ({"head": "softmax"}, "sm", 0, 5, "acc", 0.7)]
    for m, s, val, test in [(0.1, 2, 0.6, 0.95), (0.4, 16, 0.8, 0.6), (0.4, 2, 0.7, 0.5)]:
        for seed in (0, 1):
            run = f"{m}-{s}-{seed}"
            rows += [({"head": "arcface", "m": m, "s": s}, run, seed, 1, "val_acc", 0.9),  # early epoch: ignored
                     ({"head": "arcface", "m": m, "s": s}, run, seed, 5, "val_acc", val + seed * 0.01),
                     ({"head": "arcface", "m": m, "s": s}, run, seed, 5, "acc", test)]
    return frame(rows)


def test_best_cell_is_chosen_on_the_validation_metric_at_the_last_epoch():
    choice = aggregate.best_cell(grid(), ["m", "s"], "val_acc")
    assert choice.cell == (0.4, 16) and choice.axes == ("m", "s")
    assert choice.score == pytest.approx(0.805)  # mean over seeds; the softmax baseline is not a candidate
    assert aggregate.best_cell(grid(), ["m", "s"], "acc").cell == (0.1, 2)


def test_keep_cell_keeps_the_chosen_cell_and_runs_outside_the_grid():
    data = grid()
    kept = aggregate.keep_cell(data, aggregate.best_cell(data, ["m", "s"], "val_acc"))
    assert set(kept["run_id"]) == {"sm", "0.4-16-0", "0.4-16-1"}


def test_best_cell_without_the_metric_says_so():
    with pytest.raises(HarnessError, match="no run has val_nmi to choose the best m, s by"):
        aggregate.best_cell(grid(), ["m", "s"], "val_nmi")


# --- seeds, intervals and the paired difference against a reference row ------------------------------------------

def test_seed_values_average_a_seeds_rows():
    data = frame([({}, "r0", 0, 1, "acc", 0.2), ({}, "r0", 0, 2, "acc", 0.4), ({}, "r1", 1, 2, "acc", 0.9)])
    assert aggregate.seed_values(data).to_dict() == {0: pytest.approx(0.3), 1: 0.9}


def test_interval_is_the_t_interval_of_scipy():
    values = [0.81, 0.84, 0.79, 0.86]
    ci = aggregate.interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert ci.n == 4 and ci.mean == pytest.approx(np.mean(values))
    assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))
    one = aggregate.interval([0.5, float("nan")])  # NaN is no value
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.half) and one.sign == 0
    assert aggregate.interval([]).n == 0


@pytest.mark.parametrize(("cell", "reference", "sign"), [
    ([0.90, 0.92, 0.88], [0.80, 0.81, 0.79], 1),  # clearly above the reference
    ([0.70, 0.72, 0.69], [0.80, 0.81, 0.79], -1),  # clearly below
    ([0.85, 0.78, 0.83], [0.80, 0.81, 0.79], 0),  # the interval includes 0: not marked
    ([0.90, 0.92], [0.80, 0.81], 1),  # n = 2: t(0.975, 1) = 12.7 is wide, but differences 0.10, 0.11 agree closely
    ([0.82, 0.84], [0.80, 0.81], 0),  # differences 0.02, 0.03: half-width 0.064 > 0.025
    ([0.90, 0.70], [0.80, 0.81], 0),
])
def test_paired_difference_matches_scipy_ttest_rel(cell, reference, sign):
    seeds = range(len(cell))
    diff = aggregate.paired_difference(dict(zip(seeds, cell)), dict(zip(seeds, reference)))
    test = stats.ttest_rel(cell, reference)
    low, high = test.confidence_interval(0.95)
    assert diff.n == len(cell) and diff.mean == pytest.approx(np.mean(np.subtract(cell, reference)))
    assert (diff.low, diff.high) == (pytest.approx(low), pytest.approx(high))
    assert diff.sign == sign
    assert (diff.sign != 0) == (test.pvalue < 0.05)  # the interval excludes 0 exactly when the test rejects
    # the same interval by hand: mean difference +- t.ppf(0.975, n - 1) * sd / sqrt(n)
    d = np.subtract(cell, reference)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert diff.half == pytest.approx(half)


def test_paired_difference_drops_unpaired_seeds():
    cell = {0: 0.90, 1: 0.92, 2: 0.88, 7: 0.10}  # seed 7 has no reference value
    reference = {0: 0.80, 1: 0.81, 2: 0.79, 5: 0.99, 3: float("nan")}  # seed 5: no cell value; seed 3: NaN
    diff = aggregate.paired_difference(cell, reference)
    expected = stats.ttest_rel([0.90, 0.92, 0.88], [0.80, 0.81, 0.79]).confidence_interval(0.95)
    assert diff.n == 3 and (diff.low, diff.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert diff.sign == 1


def test_paired_difference_of_fewer_than_two_seeds_gives_no_mark():
    diff = aggregate.paired_difference({0: 0.99, 1: 0.98}, {1: 0.10, 2: 0.11})  # one seed in common
    assert diff.n == 1 and diff.mean == pytest.approx(0.88) and math.isnan(diff.half) and diff.sign == 0
    assert aggregate.paired_difference({0: 0.9}, {}).sign == 0


# --- a grid selection: ties broken by declared order, and reported ------------------------------------------------

def tied_grid() -> pd.DataFrame:
    """(0.1, 2) and (0.4, 16) tie on val_acc (0.8, as the mean of two seeds); (0.4, 2) is below."""
    rows = []
    for m, s, per_seed in [(0.1, 2, [0.7, 0.9]), (0.4, 16, [0.8, 0.8]), (0.4, 2, [0.75, 0.75])]:
        for seed, value in enumerate(per_seed):
            rows.append(({"head": "arcface", "m": m, "s": s}, f"{m}-{s}-{seed}", seed, 5, "val_acc", value))
    return frame(rows)


def test_a_tie_goes_to_the_first_cell_in_declared_order_and_is_reported():
    choice = aggregate.best_cell(tied_grid(), ["m", "s"], "val_acc", {"m": [0.1, 0.25, 0.4], "s": [2, 16]})
    assert choice.cell == (0.1, 2) and choice.tied == ((0.4, 16),) and choice.score == pytest.approx(0.8)
    # Declared the other way round, the other cell wins: the rule is the matrix's order, not sorted labels.
    choice = aggregate.best_cell(tied_grid(), ["m", "s"], "val_acc", {"m": [0.4, 0.1], "s": [16, 2]})
    assert choice.cell == (0.4, 16) and choice.tied == ((0.1, 2),)
    # The first axis decides first.
    choice = aggregate.best_cell(tied_grid(), ["m", "s"], "val_acc", {"m": [0.1, 0.4], "s": [16, 2]})
    assert choice.cell == (0.1, 2)


def test_no_tie_reports_nothing():
    choice = aggregate.best_cell(grid(), ["m", "s"], "val_acc", {"m": [0.1, 0.4], "s": [2, 16]})
    assert choice.cell == (0.4, 16) and choice.tied == ()


def test_epoch_best_on_a_metric_keeps_each_runs_epoch_where_it_peaked():
    rows = [({"loss": "a"}, "r0", 0, epoch, metric, value) for epoch, metric, value in [
        (1, "acc", 0.50), (2, "acc", 0.70), (3, "acc", 0.60),        # the test metric peaks at epoch 2
        (1, "val_acc", 0.40), (2, "val_acc", 0.45), (3, "val_acc", 0.45)]]  # validation: a tie, the earliest wins
    rows += [({"loss": "a"}, "r1", 1, 1, "acc", 0.9)]  # no validation metric: cannot be chosen that way
    data = pd.DataFrame([{**axes, "run_id": run, "seed": seed, "epoch": epoch, "metric": metric, "value": value}
                         for axes, run, seed, epoch, metric, value in rows])
    by_val = aggregate.restrict(data, ["acc"], epoch="best:val_acc")
    assert by_val[["run_id", "epoch", "value"]].values.tolist() == [["r0", 2, 0.70]]
    by_test = aggregate.restrict(data, ["acc"], epoch="best:acc")
    assert sorted(by_test[["run_id", "epoch"]].values.tolist()) == [["r0", 2], ["r1", 1]]
    assert aggregate.restrict(data, ["acc"], epoch="last")["epoch"].tolist() == [3, 1]


def test_a_cell_reads_its_runs_strictly_at_its_epoch_rule():
    rows = [({"loss": "a"}, "a0", 0, 1, "acc", 0.1), ({"loss": "a"}, "a0", 0, 2, "acc", 0.2),
            ({"loss": "a"}, "a1", 1, 1, "acc", 0.3), ({"loss": "a"}, "a1", 1, 2, "acc", 0.4),
            ({"loss": "b"}, "b0", 0, 2, "acc", 0.9), ({"baseline": "raw_input"}, "r0", 0, 0, "acc", 0.5)]
    data = frame(rows)
    assert aggregate.cell_rows(data, {"loss": "a"}, "acc")["value"].tolist() == [0.2, 0.4]  # last epoch
    assert aggregate.cell_rows(data, {"loss": "a"}, "acc", 1)["value"].tolist() == [0.1, 0.3]
    faithful = pd.Series({0: 1, 1: 2})  # each seed's epoch, as the original's way read it
    assert aggregate.cell_rows(data, {"loss": "a"}, "acc", "faithful",
                               faithful_epochs=faithful)["value"].tolist() == [0.1, 0.4]
    # A `where` naming no axis keeps every run; trained_only drops the baselines.
    assert set(aggregate.cell_rows(data, {}, "acc", trained_only=True)["run_id"]) == {"a0", "a1", "b0"}


def test_the_paired_t_test_p_value_is_scipys():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.6, 0.02, 7), rng.normal(0.59, 0.02, 7)
    diffs = aggregate.paired_differences(dict(enumerate(a)), dict(enumerate(b)))
    assert aggregate.t_test_p(diffs) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    for side in ("greater", "less"):
        assert aggregate.t_test_p(diffs, side=side) == pytest.approx(
            stats.ttest_rel(a, b, alternative=side).pvalue, rel=1e-12)
    assert math.isnan(aggregate.t_test_p([0.1])) and math.isnan(aggregate.t_test_p([0.1, 0.1]))


def test_tost_shows_equivalence_exactly_when_the_90_percent_interval_lies_inside_the_margin():
    rng = np.random.default_rng(4)
    for _ in range(200):
        diffs = rng.normal(rng.uniform(-0.02, 0.02), rng.uniform(0.001, 0.02), int(rng.integers(3, 10)))
        margin = rng.uniform(0.002, 0.03)
        inside = aggregate.interval(diffs, level=0.90)
        assert (aggregate.tost_p(diffs, margin) < 0.05) == (-margin < inside.low and inside.high < margin)
    with pytest.raises(HarnessError, match="margin must be positive"):
        aggregate.tost_p([0.1, 0.2], 0)


def test_holm_matches_its_definition_and_leaves_unknowns_out():
    rng = np.random.default_rng(5)
    for _ in range(100):
        p = rng.uniform(0, 0.2, int(rng.integers(1, 12))).tolist()
        order = sorted(range(len(p)), key=lambda i: p[i])
        expected = [0.0] * len(p)
        for k, i in enumerate(order):  # the definition, written out
            expected[i] = min(1.0, max((len(p) - j) * p[order[j]] for j in range(k + 1)))
        assert aggregate.holm(p) == pytest.approx(expected)
    adjusted = aggregate.holm([0.01, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_figure_bands_are_the_tables_95_percent_t_interval():
    low, high = aggregate.t_band([0.5, 0.6, 0.7])
    found = aggregate.interval([0.5, 0.6, 0.7])
    assert (low, high) == (pytest.approx(found.low), pytest.approx(found.high))
    assert aggregate.t_band([0.4]) == (0.4, 0.4)  # one seed: no band
