"""Claims as data: each study's `report.claims` states a sentence, the computation over records that supports it (a
difference between two cells, paired by seed, with its 95% t-interval; optionally one per label of an axis), the
original's claim it addresses, and the verdict it expects. `compute` recomputes a claim from a results frame;
`check` compares every recomputed verdict with the declared one, and the renderer writes the chapter's Findings from
the same results, so a number in the prose is never typed by hand."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import aggregate, search, store
from harness.catalog import BASELINE_AXIS, dataset_name, metric_name
from harness.plan import records_of
from harness.errors import HarnessError
from harness.report import LABEL_PLACEHOLDER, NOT_TESTABLE, OUTCOMES, ClaimCell, ClaimSpec, where_for, words
from harness import units


ALPHA = 0.05  # each test's level; the family's (a profile's claims) is held at it by Holm's adjustment


@dataclass(frozen=True)
class Part:
    """One difference: a label of `per` (None without it), the cells' per-seed values and their paired difference."""

    label: Any
    a: dict[Any, float]
    b: dict[Any, float]
    difference: aggregate.Interval

    @property
    def differences(self) -> np.ndarray:
        return aggregate.paired_differences(self.a, self.b)

    @property
    def side(self) -> int:
        """+1 / -1: the 95 % interval lies above / below 0; 0: it contains 0 (or cannot be computed)."""
        d = self.difference
        if d.n < 2 or not np.isfinite(d.half):
            return 0
        return 1 if d.low > 0 else -1 if d.high < 0 else 0

    @property
    def p(self) -> float:
        """Two-sided paired t-test of a difference of 0. Every seed moving by the same amount is exact: 0 when
        that amount is not 0 (NaN when it is: the cells coincide; fewer than two seeds: NaN)."""
        d = self.differences
        if len(d) >= 2 and np.all(d == d[0]):
            return 0.0 if d[0] != 0 else float("nan")
        return aggregate.t_test_p(d)

    def p_same(self, margin: float) -> float:
        """Equivalence within +-margin (a fraction) by two one-sided tests; no spread is exact."""
        d = self.differences
        if len(d) >= 2 and np.all(d == d[0]):
            return 0.0 if abs(d[0]) < margin else 1.0
        return aggregate.tost_p(d, margin)

    def p_below(self, margin: float) -> float:
        """One-sided test that the mean difference is below +margin (a fraction); no spread is exact."""
        d = self.differences
        if len(d) >= 2 and np.all(d == d[0]):
            return 0.0 if d[0] < margin else 1.0
        return aggregate.t_test_p(d, margin, "less")


@dataclass(frozen=True)
class Test:
    """One member of the profile's family of tests: what it would show, its p-value and, once the family is
    known, its Holm-adjusted p-value."""

    # "different": a difference (on the side the parts take); "same": equivalence within the margin; "not higher":
    # a below b + margin
    shows: str
    p: float
    adjusted: float | None = None

    def passes(self, adjusted: bool = True) -> bool:
        value = self.adjusted if adjusted and self.adjusted is not None else self.p
        return bool(np.isfinite(value) and value < ALPHA)


@dataclass(frozen=True)
class Result:
    claim: ClaimSpec
    parts: list[Part]
    runs: frozenset[str] = frozenset()  # the run_ids its cells read
    labels: dict[str, str] = field(default_factory=dict)  # {a_<axis>}: a cell's labels on an axis, in words
    untestable: str = ""  # why the effect cannot act in this setting (computed, or the claim's declared reason)
    on_original: bool = False  # tested on the original's data at a comparable budget (the profile says so)
    tests: tuple[Test, ...] = ()  # in the family; adjusted by `family`
    family_size: int = 0  # the number of tests Holm adjusted over (0: not adjusted yet)

    def outcome(self, adjusted: bool = True) -> str:
        """holds / undecided / fails (OUTCOMES), "answered" for a question, or "not testable"."""
        if self.untestable:
            return "not testable"
        if self.claim.kind == "question":
            return "answered"
        shown = {t.shows for t in self.tests if t.passes(adjusted)}
        sides = {int(np.sign(p.difference.mean)) for p in self.parts}
        if self.claim.expect == "same":
            return "holds" if "same" in shown else "fails" if "different" in shown else "undecided"
        if self.claim.expect == "not higher":
            return ("holds" if "not higher" in shown else
                    "fails" if "different" in shown and sides == {1} else "undecided")
        expected = 1 if self.claim.expect == "higher" else -1
        if "different" not in shown or len(sides) != 1:
            return "undecided"
        return "holds" if sides == {expected} else "fails"

    def verdict_at(self, adjusted: bool = True) -> str:
        outcome = self.outcome(adjusted)
        if outcome == "not testable":
            return NOT_TESTABLE
        if outcome == "answered":
            return "answered"
        return words(self.claim.kind, self.on_original)[OUTCOMES.index(outcome)]

    @property
    def verdict(self) -> str:
        """The verdict on Holm-adjusted p-values (unadjusted until `family` has adjusted them)."""
        return self.verdict_at(adjusted=True)

    @property
    def inside(self) -> bool | None:
        """Whether the original's reported difference lies inside the 95 % interval (None: it reported none, or
        this is a stand-in, whose levels are not the original's)."""
        if (self.claim.reported is None or not self.on_original or len(self.parts) != 1
                or not np.isfinite(self.parts[0].difference.half)):
            return None
        d, effect = self.parts[0].difference, self.claim.reported.effect / units.PERCENT
        return bool(d.low <= effect <= d.high)

    def p_text(self) -> str:
        """The claim's p-values in words: adjusted (with the family's size) and unadjusted."""
        if not self.tests:
            return ""
        def fmt(p: float | None) -> str:
            return "n/a" if p is None or not np.isfinite(p) else "< 0.001" if p < 0.001 else f"= {p:.3f}"
        names = {"same": "equivalence", "different": "difference", "not higher": "at most the margin above"}
        parts = [f"{names[t.shows]}: Holm-adjusted p {fmt(t.adjusted)} (unadjusted {fmt(t.p)})"
                 if t.adjusted is not None else f"{names[t.shows]}: p {fmt(t.p)}" for t in self.tests]
        return "; ".join(parts)

    def reading(self) -> str:
        """The sentence after a finding's numbers, chosen by the sign of its 95 % interval(s) and by whether the
        family's adjustment keeps it: no sentence typed in a study file says which way a difference goes, so none
        can get its sign wrong. Empty for a claim that computes nothing."""
        if self.untestable or not self.parts:
            return ""
        sides = [p.side for p in self.parts]
        what = "The difference of the spreads" if self.claim.statistic == "spread" else "The difference"
        if len(self.parts) == 1:
            text = {1: f"{what} is positive: its whole 95 % interval lies above zero",
                    -1: f"{what} is negative: its whole 95 % interval lies below zero",
                    0: "Its 95 % interval contains zero: these records show no difference either way"}[sides[0]]
        elif len(set(sides)) == 1:
            text = {1: f"{what} is positive for every {self.claim.per} (each 95 % interval lies above zero)",
                    -1: f"{what} is negative for every {self.claim.per} (each 95 % interval lies below zero)",
                    0: f"Every {self.claim.per}'s 95 % interval contains zero: no difference shown"}[sides[0]]
        else:
            counts = [(sides.count(1), "above zero"), (sides.count(-1), "below zero"),
                      (sides.count(0), "containing zero")]
            text = (f"{what} is of mixed sign across the {len(sides)} labels of {self.claim.per}: "
                    + ", ".join(f"{n} interval{'s' if n != 1 else ''} {where}" for n, where in counts if n))
        if self.claim.margin is not None:
            margin = units.fixed(self.claim.margin / units.PERCENT)
            inside = all(-self.claim.margin < p.difference.low * units.PERCENT
                         and p.difference.high * units.PERCENT < self.claim.margin for p in self.parts)
            band = f"the band from -{margin} to +{margin} points that counts as no difference"
            text += (f"; {'every' if len(sides) > 1 else 'the'} interval "
                     f"{'lies inside' if inside else 'is not wholly inside'} {band}")
        if (self.claim.kind != "question" and any(sides) and self.outcome(adjusted=False) != "undecided"
                and self.outcome(adjusted=True) == "undecided"):
            text += (f"; adjusted for the profile's {self.family_size} tests together (Holm), the difference is "
                     "not shown")
        return text

    def numbers(self) -> dict[str, str]:
        """The sentence's placeholders as text (percentage points, two decimals; signed for differences)."""
        if not self.parts:
            return dict(self.labels)
        diffs = [p.difference for p in self.parts]
        means = [d.mean for d in diffs]
        a = [aggregate.interval(p.a.values()).mean for p in self.parts]
        b = [aggregate.interval(p.b.values()).mean for p in self.parts]

        def signed(value: float) -> str:
            return units.signed(value)  # an end near 0 keeps the digits that show its sign

        def span(values: list[float]) -> str:
            low, high = units.fixed(min(values)), units.fixed(max(values))
            return low if low == high else f"{low} to {high}"

        return {"mean": signed(means[0]), "low": signed(diffs[0].low), "high": signed(diffs[0].high),
                "min": signed(min(means)), "max": signed(max(means)), "lowest": signed(min(d.low for d in diffs)),
                "highest": signed(max(d.high for d in diffs)), "a": span(a), "b": span(b),
                "n": str(min(d.n for d in diffs)), **self.labels}


def tests_of(claim: ClaimSpec, parts: Sequence[Part]) -> tuple[Test, ...]:
    """The claim's members of the family. A directional claim needs every part on one side: its p-value is the
    largest of its parts' (an intersection-union test). "same" is two members: equivalence of every part (the
    largest TOST p) and a difference in any part (the smallest p, Bonferroni over the parts). A question is
    answered, not tested; a claim whose cells coincide tests nothing."""
    if claim.kind == "question" or not parts:
        return ()
    def worst(values: list[float]) -> float:
        return float("nan") if any(not np.isfinite(v) for v in values) else max(values)
    p_diff = [part.p for part in parts]
    if claim.expect in ("higher", "lower"):
        return (Test("different", worst(p_diff)),)
    assert claim.margin is not None
    if claim.expect == "not higher":
        return (Test("not higher", worst([part.p_below(claim.margin / units.PERCENT) for part in parts])),
                Test("different", worst(p_diff)))
    finite = [v for v in p_diff if np.isfinite(v)]
    any_diff = min(1.0, len(parts) * min(finite)) if finite else float("nan")
    return (Test("same", worst([part.p_same(claim.margin / units.PERCENT) for part in parts])),
            Test("different", any_diff))


def family(results: Sequence[Result | HarnessError]) -> list[Result | HarnessError]:
    """A profile's claims as one family: every test of every claim Holm-adjusted together, so that the chance of
    any false verdict in the profile stays at ALPHA. A test without a p-value (one seed; a claim the records
    cannot compute, which counts as one test) enters as p = 1: it can only make the others stricter."""
    members = [(i, j) for i, r in enumerate(results) if isinstance(r, Result) for j in range(len(r.tests))]
    unknown = sum(1 for r in results if isinstance(r, HarnessError))
    p = [results[i].tests[j].p for i, j in members]  # type: ignore[union-attr]
    p = [v if np.isfinite(v) else 1.0 for v in p] + [1.0] * unknown
    adjusted = aggregate.holm(p)
    out = list(results)
    for (i, j), value in zip(members, adjusted):
        r = out[i]
        tests = list(r.tests)  # type: ignore[union-attr]
        tests[j] = dataclasses.replace(tests[j], adjusted=value)
        out[i] = dataclasses.replace(r, tests=tuple(tests), family_size=len(p))  # type: ignore[arg-type]
    return out


def cell_frame(frame: pd.DataFrame, cell: ClaimCell, profile: str,
               order: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """The rows of a cell's runs (strict `where`; baselines only when asked for), its metric at its epoch rule."""
    where = where_for(cell, profile, order)  # the same strict `where` as the protocols table
    return aggregate.cell_rows(frame, where, cell.metric, cell.epoch, cell.select,
                               trained_only=BASELINE_AXIS not in where)


def coincide(claim: ClaimSpec, parts: Sequence[Part], rows: Mapping[str, pd.DataFrame], frame: pd.DataFrame) -> str:
    """Why the effect cannot act here, when the two cells give the same value in every seed ("" otherwise). Where
    a cell picks its epoch by a metric and that epoch is the last evaluated one of every run (read from the
    records), choosing the epoch could not change anything."""
    if not parts or any(len(p.differences) < 2 or np.any(p.differences != 0) for p in parts):
        return ""
    for side, cell in (("a", claim.a), ("b", claim.b)):
        if cell is None or not (isinstance(cell.epoch, str) and cell.epoch.startswith("best:")):
            continue
        last = frame.groupby("run_id")["epoch"].max()
        chosen = rows[side].groupby("run_id")["epoch"].max()
        if len(chosen) and all(chosen[run] == last.get(run) for run in chosen.index):
            metric = metric_name(cell.epoch.removeprefix("best:"))
            return (f"in every run the epoch of the best {metric} is its last evaluated epoch (the metric was still "
                    "rising when training stopped), so choosing the epoch changes nothing")
    return "the two cells give the same value in every seed"


def compute(claim: ClaimSpec, frame: pd.DataFrame, profile: str,
            order: Mapping[str, Sequence[Any]] | None = None, on_original: bool = False) -> Result:
    """A claim's differences, tests and (unadjusted) verdict from a frame of every record (baselines included).
    A cell without values is a HarnessError naming the claim: a record it needs is missing."""
    if claim.a is None or claim.b is None:
        return Result(claim, [], untestable=claim.reason, on_original=on_original)
    if frame.empty:
        raise HarnessError(f"claim '{claim.name}': no records; run the study")
    a_rows, b_rows = cell_frame(frame, claim.a, profile, order), cell_frame(frame, claim.b, profile, order)
    if claim.per is None:
        labels: list[Any] = [None]
    else:
        if claim.per not in a_rows:
            raise HarnessError(f"claim '{claim.name}': no run of cell a has the axis '{claim.per}'")
        labels = list(dict.fromkeys(a_rows[claim.per].dropna()))
        labels.sort(key=lambda v: aggregate.declared_rank((v,), order or {}, [claim.per]))
    parts = []
    for label in labels:
        a, b = a_rows, b_rows
        if label is not None:
            a = a[a[claim.per] == label]
            if claim.per in b:  # a cell without that axis (one baseline for every label) is compared whole
                b = b[b[claim.per].isna() | (b[claim.per] == label)]
        where = "" if label is None else f" ({claim.per} = {label})"
        for name, rows in (("a", a), ("b", b)):
            if rows.empty:
                raise HarnessError(f"claim '{claim.name}': no record for cell {name}{where}; run the study "
                                   f"(or fix the cell's where/metric/epoch)")
        for name, rows in (("a", a), ("b", b)):
            if rows.groupby("seed")["run_id"].nunique().max() > 1:
                runs = rows.drop_duplicates("run_id")
                differ = [c for c in runs.columns if c not in ("run_id", "seed", "epoch", "metric", "value")
                          and runs[c].astype(str).nunique() > 1]
                raise HarnessError(f"claim '{claim.name}': cell {name}{where} holds several runs per seed (they "
                                   f"differ on {', '.join(differ) or 'their settings'}); a seed's value would be "
                                   "their mean: name the axis in the cell's `where` (or `per`)")
        pa, pb = aggregate.seed_values(a).to_dict(), aggregate.seed_values(b).to_dict()
        parts.append(Part(label, pa, pb, aggregate.paired_difference(pa, pb)))
    if claim.statistic == "spread":
        parts = [spread_part(claim, parts)]
    runs = frozenset(a_rows["run_id"]) | frozenset(b_rows["run_id"])
    untestable = coincide(claim, parts, {"a": a_rows, "b": b_rows}, frame)
    return Result(claim, parts, runs, cell_labels(claim, {"a": a_rows, "b": b_rows}, order), untestable,
                  on_original, () if untestable else tests_of(claim, parts))


def spread_part(claim: ClaimSpec, parts: Sequence[Part]) -> Part:
    """One part from the per-label parts of a spread claim: per seed, the highest label's value less the lowest's,
    in cell a and in cell b, over the seeds every label of both cells has; then their paired difference. A
    seed's spread has noise in it (the range of noisy values is wider than the range of their means), alike in
    both cells when their seeds are alike: the comparison is fair, its level is not the losses' true range."""
    seeds = sorted(set.intersection(*(set(p.a) & set(p.b) for p in parts))) if parts else []
    if len(parts) < 2 or not seeds:
        raise HarnessError(f"claim '{claim.name}': a spread needs at least two labels of {claim.per} sharing "
                           "seeds in both cells")
    a = {s: max(p.a[s] for p in parts) - min(p.a[s] for p in parts) for s in seeds}
    b = {s: max(p.b[s] for p in parts) - min(p.b[s] for p in parts) for s in seeds}
    return Part(None, a, b, aggregate.paired_difference(a, b))


def cell_labels(claim: ClaimSpec, rows: Mapping[str, pd.DataFrame],
                order: Mapping[str, Sequence[Any]] | None) -> dict[str, str]:
    """The {a_<axis>} / {b_<axis>} placeholders of a claim's sentence: the labels its cell's runs carry on that
    axis, in the profile's declared order."""
    labels = {}
    for placeholder in re.findall(r"\{(\w*)\}", claim.sentence):
        if found := LABEL_PLACEHOLDER.match(placeholder):
            cell, axis = found.groups()
            data = rows[cell]
            present = list(dict.fromkeys(data[axis].dropna())) if axis in data else []
            present.sort(key=lambda v: aggregate.declared_rank((v,), order or {}, [axis]))
            labels[placeholder] = ", ".join(aggregate.label_text(v) for v in present) or "--"
    return labels


def config_values(claim: ClaimSpec, study) -> dict[str, str]:  # noqa: ANN001 (spec.Study)
    """The {a.<config key>} / {b.<config key>} placeholders of a claim's sentence: that setting among the cell's
    planned runs (their resolved configs), in words; "--" where no run of the cell sets it."""
    from harness.report import CONFIG_PLACEHOLDER, FIELDS

    found = {}
    for placeholder in FIELDS.findall(claim.sentence):
        if not (match := CONFIG_PLACEHOLDER.match(placeholder)):
            continue
        side, key = match.groups()
        cell = claim.a if side == "a" else claim.b
        values = []
        for run in cell_runs(cell, study) if cell is not None else []:
            value: Any = run.config_dict()
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None and value not in values:
                values.append(value)
        found[placeholder] = ", ".join(setting_text(v) for v in values) or "--"
    return found


def setting_text(value: Any) -> str:
    """A config value in words: a run of consecutive integers as first-last, a list joined, else as written."""
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value) and value == list(range(value[0], value[0] + len(value))):
            return f"{value[0]}-{value[-1]}" if len(value) > 1 else str(value[0])
        return ", ".join(setting_text(v) for v in value)
    return aggregate.label_text(value)


def macro_name(study: str, claim: str, field: str) -> str:
    return f"claim:{study}:{claim}:{field}"


def unread_runs(claim: ClaimSpec, study, scan: store.Scan) -> list[str]:  # noqa: ANN001 (spec.Study)
    """The runs of the study's matrix a claim's cells should read that give it nothing: missing, unreadable,
    failed, or without a finite value of the cell's metric; one phrase each. A run is expected where its cell's
    `where` names it, unless the recorded runs of its setting (its axes, any seed) all lack that metric."""
    if claim.a is None or claim.b is None:
        return []
    found = []
    for cell in (claim.a, claim.b):
        wanted = cell_plan(cell, study)
        axes = [c for c in wanted.columns if c not in ("run_id", "seed")]
        settings: dict[tuple, list[tuple[str, int]]] = {}  # a setting's axis labels -> its runs (id, seed)
        for row in wanted.to_dict("records"):
            key = tuple(str(row[a]) for a in axes)
            settings.setdefault(key, []).append((row["run_id"], row["seed"]))
        for setting in settings.values():
            ids = [run_id for run_id, _ in setting]
            recorded = [scan.ok[rid] for rid in ids if rid in scan.ok]
            if recorded and not any(cell.metric in m for r in recorded for m in r.metrics):
                continue  # its runs record no such metric (an unseen-class metric where no class is unseen)
            for run_id, seed in setting:
                record = scan.ok.get(run_id)
                values = [m[cell.metric] for m in record.metrics if cell.metric in m] if record else []
                if run_id in scan.corrupt:
                    why = f"is unreadable ({scan.corrupt[run_id]})"
                elif run_id in scan.failed:
                    why = f"failed ({scan.failed[run_id].error.message})"
                elif record is None:
                    why = "is missing"
                elif not values or not all(np.isfinite(v) for v in values):
                    why = f"has no finite {cell.metric}"
                else:
                    continue
                found.append(f"run {run_id} (seed {seed}) {why}")
    return list(dict.fromkeys(found))


def on_original(study, claim: ClaimSpec) -> bool:  # noqa: ANN001 (spec.Study)
    """Whether the study's profile declares that it tests this claim on the original's data at a comparable
    budget (its `claims_on_original`); otherwise the profile is a stand-in for it."""
    return study.spec.profiles[study.profile].on_original(claim.name)


def study_claims(study, frame: pd.DataFrame) -> list[Result | HarnessError]:  # noqa: ANN001 (spec.Study)
    """Every claim of a study computed from its results frame (unadjusted); the error where it cannot be."""
    out: list[Result | HarnessError] = []
    for claim in study.spec.report.claims:
        try:
            out.append(compute(claim, frame, study.profile, study.axes, on_original(study, claim)))
        except HarnessError as exc:
            out.append(exc)
    return out


def stand_in(study, claim: ClaimSpec) -> str:  # noqa: ANN001 (spec.Study)
    """The setting a claim was tested on, from its cells' resolved configs: dataset(s) and epochs trained."""
    configs = [run.config for cell in (claim.a, claim.b) if cell is not None for run in cell_runs(cell, study)]
    trained = [c for c in configs if c.train.epochs > 0]
    datasets = ", ".join(dict.fromkeys(dataset_name(c.data.dataset) for c in configs)) or "--"
    epochs = sorted({c.train.epochs for c in trained})
    span = "" if not epochs else f", {epochs[0]}" + (f" to {epochs[-1]}" if len(epochs) > 1 else "") + (
        " epoch" if epochs == [1] else " epochs")
    return datasets + span


def cell_plan(cell: ClaimCell, study) -> pd.DataFrame:  # noqa: ANN001 (spec.Study)
    """The planned runs a cell's `where` names, one row each (axes, run_id, seed): the strict `where` that
    reads the records (aggregate.strictly), baselines only when it names one."""
    runs = pd.DataFrame([{**axes, "run_id": run.run_id, "seed": run.seed} for run in study.runs
                         for axes in [run.axes, *study.aliases.get(run.run_id, [])]])
    where = where_for(cell, study.profile, study.axes)
    wanted = aggregate.strictly(runs, where)
    if BASELINE_AXIS not in where and BASELINE_AXIS in wanted:
        wanted = wanted[wanted[BASELINE_AXIS].isna()]
    return wanted


def cell_runs(cell: ClaimCell, study) -> list:  # noqa: ANN001 (spec.Study)
    """The planned runs (spec.Run) a cell's `where` names."""
    ids = set(cell_plan(cell, study)["run_id"])
    return [run for run in study.runs if run.run_id in ids]


def study_results(study, results, unrun_ok: bool = False) -> tuple[list[Result | HarnessError], list[str]]:  # noqa: ANN001
    """Every claim of one study computed from its records (unadjusted: `family` adjusts a profile's claims
    together), and the problems found (one line each): a record edited after it was written, a run a claim
    reads that is missing, unreadable, failed or not finite (for every seed the study declares). With `unrun_ok`
    (a pre-registered profile), a study with no record at all is not run yet, not a problem."""
    problems, computed = [], []
    scan = store.scan(results, study.name, study.profile)  # read once: the claims and the integrity check share it
    if unrun_ok and not (scan.ok or scan.failed or scan.corrupt):
        return [HarnessError(f"{study.name}/{study.profile}: not run yet") for _ in study.spec.report.claims], []
    frame = aggregate.long_frame(records_of(study, scan))
    for claim, result in zip(study.spec.report.claims, study_claims(study, frame)):
        if unread := unread_runs(claim, study, scan):
            more = f" (and {len(unread) - 1} more)" if len(unread) > 1 else ""
            problems.append(f"{study.name}: claim '{claim.name}': {unread[0]}{more}; run `harness run {study.name} "
                            f"--profile {study.profile}` (a bad file: delete it first), or restore it from git")
            computed.append(HarnessError(unread[0]))
            continue
        if isinstance(result, HarnessError):
            problems.append(f"{study.name}: {result}")
        computed.append(result)
    for record in [*scan.ok.values(), *scan.failed.values()]:  # as written, before relabelling
        if not record.intact():
            readers = [r.claim.name for r in computed if isinstance(r, Result) and record.run_id in r.runs]
            which = f"claim{'s' if len(readers) > 1 else ''} '{', '.join(readers)}': " if readers else ""
            problems.append(f"{study.name}: {which}record {record.run_id} {record.axes} was edited after it was "
                            f"written (its digest does not match its content); restore it (git checkout) or "
                            f"rerun it")
    return computed, problems


def verdict_problems(study, results: Sequence[Result | HarnessError],  # noqa: ANN001
                     registered: bool = False) -> list[str]:
    """A verdict (adjusted within the family) that differs from the one the study file declares for this
    profile, or a computed verdict the study file does not declare (a pre-registered profile's claims are held
    by its frozen file instead: their verdicts are found, not declared)."""
    problems = []
    for claim, result in zip(study.spec.report.claims, results):
        if isinstance(result, HarnessError):
            continue
        declared = claim.verdict.get(study.profile)
        if declared is None and result.verdict != "answered" and not registered:
            problems.append(f"{study.name}: claim '{claim.name}': the records give '{result.verdict}' and the "
                            f"study file declares no verdict for profile {study.profile}; declare it "
                            f"(verdict: {{{study.profile}: {result.verdict}}})")
        elif declared is not None and result.verdict != declared:
            problems.append(f"{study.name}: claim '{claim.name}': the records give '{result.verdict}', the study "
                            f"file declares '{declared}' ({describe(result)})")
    return problems


def describe(result: Result) -> str:
    """The differences behind a verdict, in one line."""
    text = "; ".join(
        ("" if p.label is None else f"{p.label}: ")
        + f"{units.fixed(p.difference.mean, sign=True)} [{units.fixed(p.difference.low, sign=True)}, "
          f"{units.fixed(p.difference.high, sign=True)}] pp"
        for p in result.parts) or "nothing computed"
    return f"{text}; {result.p_text()}" if result.tests else text


@dataclass(frozen=True)
class ProfileCheck:
    """`harness check` on one profile: the problems found (one line each), the claims declared, the verdicts."""

    problems: list[str]
    total: int
    verdicts: dict[str, int]
    family: int = 0  # the tests Holm adjusted over
    registered: str | None = None  # the profile's pre-registration file, where it has one

    @property
    def summary(self) -> str:
        return ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items())) or "none computed"


def profile_claims(studies: Sequence[str], profile: str, results,  # noqa: ANN001
                   unrun_ok: bool = False) -> tuple[dict, list[str]]:
    """Every claim of every study of a profile, computed and judged as one family: {study: (Study, [Result or
    HarnessError])} for every study the experiments folder holds (the family), and the problems found."""
    from harness import spec

    found, problems = {}, []
    for name in spec.list_studies():
        # with a declared search's chosen runs, as the records choose them (harness.search)
        study = search.with_chosen(spec.load(name, profile, components=False), store.scan(results, name, profile))
        computed, trouble = study_results(study, results, unrun_ok)
        found[name] = (study, computed)
        if name in studies:
            problems += trouble
    flat = family([r for _, computed in found.values() for r in computed])
    for name, (study, computed) in found.items():
        found[name] = (study, flat[:len(computed)])
        flat = flat[len(computed):]
    return found, problems


def check_profile(studies: Sequence[str], profile: str, results, paper,  # noqa: ANN001 (Path)
                  registered: str | None = None, extra: Sequence[str] = ()) -> ProfileCheck:
    """Every claim of these studies recomputed from the profile's records (Holm-adjusted over every study's
    claims), and the chapters' prose in `paper` searched for hand-typed result numbers. `registered`: the
    profile's pre-registration file (harness.preregistration), which holds its claims instead of declared
    verdicts and lets a study without records be not run yet; `extra`: that file's own problems."""
    if not (Path(paper) / "main.tex").is_file():  # a mistyped --paper would otherwise check no prose and pass
        raise HarnessError(f"--paper {paper}: no main.tex there; give the paper folder (the one holding main.tex)")
    found, problems = profile_claims(studies, profile, results, unrun_ok=registered is not None)
    problems += list(extra)
    total, verdicts, size = 0, {}, 0
    for name in studies:
        study, computed = found[name]
        problems += verdict_problems(study, computed, registered is not None)
        if not study.spec.report.answered_by:
            problems.append(f"{name}: its question ({' '.join(study.spec.question.split())[:60]}...) is answered by "
                            "nothing: list the tables, figures or claims that answer it in report.answered_by")
        total += len(study.spec.report.claims)
        for result in computed:
            if isinstance(result, Result):
                verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
                size = max(size, result.family_size)
    from harness import citations  # every catalog name has a source, every \cite resolves
    from harness.prose import chapter_verdict_problems, jargon_problems  # keys; prose resting on verdicts

    given = {(name, claim.name): (result.verdict, result.verdict_at(adjusted=False))
             for name, (study, computed) in found.items()
             for claim, result in zip(study.spec.report.claims, computed) if isinstance(result, Result)}
    prose = (prose_problems(paper) + citations.problems(Path(paper)) + jargon_problems(Path(paper))
             + chapter_verdict_problems(Path(paper), given, profile))
    return ProfileCheck(problems + prose, total, verdicts, size, registered)


def prose_problems(paper) -> list[str]:  # noqa: ANN001 (Path)
    """Hand-typed result numbers in the chapters and main.tex, one line each with file and line."""
    from harness.prose import hand_typed_at, uncommented

    problems = []
    for path in sorted([paper / "main.tex", *(paper / "chapters").glob("*.tex")]):
        if not path.exists():
            continue
        text = uncommented(path.read_text())
        for offset, found in hand_typed_at(text):
            problems.append(f"{path}:{text.count(chr(10), 0, offset) + 1}: a result number typed by hand "
                            f"({found!r}); state it as a claim in the study file and let the Findings show it")
    return problems

