"""The calibration kind (`report.calibration`): an A/A check of the paired rule that marks table cells and decides
each claim's difference. One configuration is run with many seeds; random disjoint pairs of groups of `group` of
those runs, paired by position, are compared by the rule as if they were two methods (different when the 95 %
paired t-interval of their differences excludes 0). Nothing differs between the groups, so the share called
different is the rule's false-positive rate, which should be near its nominal 5 %. Written as macros (rate, its
exact binomial interval, counts) for the method chapter; verified on its runs' values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness.kinds.shared import Checker
from harness.schema import Strict

if TYPE_CHECKING:  # the behaviour's types, read at render and verify time (imported inside the functions)
    from harness.render.compare import ItemCheck, Rerun

NAME = "calibration"
FIELD = "calibration"  # its key in a study's `report:`
SECTION = "results"


class CalibrationSpec(Strict):
    """One configuration's runs (a strict `where`, as a claim's cell: no baseline unless named), one metric at
    one epoch rule, compared as `splits` random A/A pairs of groups of `group` runs."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    where: dict[str, Any] = {}
    where_in: dict[str, dict[str, Any]] = {}  # profile -> its own `where`
    metric: str
    epoch: str | int = "last"
    select: None = None  # a claim cell's shape, so the same checks apply; one configuration, nothing to select
    group: int = Field(default=5, ge=2)  # runs per group: the seeds a study compares two methods on
    splits: int = Field(default=1000, ge=200)  # random A/A splits drawn
    seed: int = 0  # of the draw of splits


FIELD_TYPE, FIELD_DEFAULT = list[CalibrationSpec], []


def check(specs: list[CalibrationSpec], checker: Checker) -> None:
    for spec in specs:
        checker.cell(f"report.calibration '{spec.name}'", spec)


def stem(spec: CalibrationSpec) -> str:
    return "calibration"  # one file for every calibration of a chapter


def false_positives(values: Sequence[float], group: int, splits: int, seed: int) -> tuple[int, int]:
    """How many of `splits` random A/A comparisons the paired rule calls different: each draws 2 x `group` of the
    runs without replacement, pairs the first group with the second by position, and asks whether the 95 %
    t-interval of the differences excludes 0 (harness.aggregate.paired_difference, as the table marks do)."""
    import numpy as np

    from harness import aggregate

    if len(values) < 2 * group:
        from harness.errors import HarnessError

        raise HarnessError(f"an A/A check in groups of {group} needs at least {2 * group} runs, found {len(values)}")
    rng = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    different = 0
    for _ in range(splits):
        chosen = rng.permutation(len(data))[:2 * group]
        a = dict(enumerate(data[chosen[:group]]))
        b = dict(enumerate(data[chosen[group:]]))
        different += aggregate.paired_difference(a, b).sign != 0
    return int(different), splits


def ideal_rates(runs: int, group: int, splits: int, samples: int = 400, seed: int = 0) -> list[float]:
    """The same A/A procedure applied to `samples` sets of `runs` values drawn from one normal distribution (the
    rule is scale-free, so a standard normal stands for any): the rate each sample gives. One sample's rate
    varies around the nominal 5 % because its splits share its runs; these rates say how far."""
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(seed)
    critical = stats.t.ppf(0.975, group - 1)
    rates = []
    for _ in range(samples):
        values = rng.standard_normal(runs)
        order = np.argsort(rng.random((splits, runs)), axis=1)[:, :2 * group]  # a permutation's first 2 x group
        d = values[order[:, :group]] - values[order[:, group:]]
        t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(group))
        rates.append(float(np.mean(np.abs(t) > critical)))
    return rates


def rate_interval(different: int, splits: int) -> tuple[float, float, float]:
    """The share called different and its exact (Clopper-Pearson) 95 % binomial interval. The splits reuse the
    same runs, so they are not independent: the interval is narrower than the runs alone could support."""
    from scipy import stats

    ci = stats.binomtest(different, splits).proportion_ci(0.95, method="exact")
    return different / splits, float(ci.low), float(ci.high)


def values_of(spec: CalibrationSpec, frame: Any, profile: str, order: Any) -> Any:
    """One value per seed of the configuration's runs."""
    from harness import aggregate
    from harness.catalog import BASELINE_AXIS
    from harness.kinds.shared import where_for

    where = where_for(spec, profile, order)
    rows = aggregate.cell_rows(frame, where, spec.metric, spec.epoch, None, trained_only=BASELINE_AXIS not in where)
    return rows, aggregate.seed_values(rows)


def write(chapter: Any, specs: list[CalibrationSpec], facts: dict[str, Any]) -> list[str]:
    """calibration.tex: each check's rate and interval as \\claimval{<study>}{<name>}{<field>} macros, and a
    sentence saying what was computed."""
    import numpy as np
    from scipy import stats

    from harness.errors import HarnessError

    items = []
    for spec in specs:
        _, values = values_of(spec, chapter.data.frame, chapter.study.profile, chapter.study.axes)
        try:
            different, splits = false_positives(values.tolist(), spec.group, spec.splits, spec.seed)
        except HarnessError as exc:
            items.append({"spec": spec, "missing": str(exc)})
            continue
        rate, low, high = rate_interval(different, splits)
        ideal = np.percentile(ideal_rates(len(values), spec.group, spec.splits, seed=spec.seed), [2.5, 50, 97.5])
        items.append({"spec": spec, "runs": len(values), "different": different, "splits": splits,
                      "rate": f"{100 * rate:.1f}", "low": f"{100 * low:.1f}", "high": f"{100 * high:.1f}",
                      "ideal_low": f"{100 * ideal[0]:.1f}", "ideal_median": f"{100 * ideal[1]:.1f}",
                      "ideal_high": f"{100 * ideal[2]:.1f}", "side": int(np.sign(rate - ideal[0]) + np.sign(rate - ideal[2])) // 2
                      if not ideal[0] <= rate <= ideal[2] else 0, "shapiro": f"{stats.shapiro(values.to_numpy()).pvalue:.3f}"})
    return [chapter.write("calibration.tex", "calibration.tex.j2", items=items, profile=chapter.study.profile)]


def runs_behind(spec: CalibrationSpec, frame: Any, profile: str, order: Any) -> set[str]:
    rows, _ = values_of(spec, frame, profile, order)
    return set(rows["run_id"])


def verify(spec: CalibrationSpec, rerun: Rerun) -> ItemCheck | None:
    from harness.render.compare import check_runs

    behind = runs_behind(spec, rerun.before.all, rerun.profile, rerun.order)
    if not rerun.asked(spec.name) and not (behind & set(rerun.reruns)):
        return None
    return check_runs(f"{rerun.study}/{spec.name}", NAME, rerun, behind)
