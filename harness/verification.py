"""Does a rerun say what the records say? Compared at the level a reader reads: each cell of a table or figure
(recorded mean and 95 % interval against the rerun's mean), the cell a selection chose, the marked cells, and
each claim's verdict. `harness verify` uses it when the rerun's numerical environment differs from the records'
(another CPU, another thread count: float sums round differently, so bit-identity is not to be had there)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import aggregate
from harness.errors import HarnessError
from harness.render import baselines, tables
from harness.render.axes import label_text
from harness.report import FigureSpec, ReportSpec, TableSpec
from harness.store import RunRecord
from harness import units

Order = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class CellDiff:
    """One cell of an item: its values per seed as recorded and as rerun."""

    cell: str  # the cell in words ("contrastive / 10")
    recorded: aggregate.Interval
    rerun: aggregate.Interval
    # Allowed beyond the interval: the larger of the tolerance and the tables' printed precision (0.01 points), so
    # that a cell whose seeds agree exactly (a baseline) may still move by what no reader could see.
    tolerance: float

    @property
    def difference(self) -> float:
        return self.rerun.mean - self.recorded.mean

    @property
    def unchanged(self) -> bool:
        """Bit for bit (a NaN half-width, one seed, equals itself here)."""
        a, b = self.recorded, self.rerun
        return a.n == b.n and np.array_equal([a.mean, a.half], [b.mean, b.half], equal_nan=True)

    @property
    def within(self) -> bool:
        """The rerun's mean inside the recorded cell's 95 % interval (one seed: within the tolerance)."""
        if not (np.isfinite(self.recorded.mean) and np.isfinite(self.rerun.mean)):
            return np.isfinite(self.recorded.mean) == np.isfinite(self.rerun.mean)
        if self.recorded.n < 2 or not np.isfinite(self.recorded.half):
            return abs(self.difference) <= self.tolerance
        return self.recorded.low - self.tolerance <= self.rerun.mean <= self.recorded.high + self.tolerance


@dataclass
class ItemCheck:
    """One table, figure or claim: its cells, and what changed that a reader would see."""

    name: str  # study/item, as its caption prints it
    kind: str  # table, figure or claim
    scale: float = 1.0  # units.PERCENT for an item shown in percent
    cells: list[CellDiff] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # a chosen cell or a verdict that moved: a conclusion
    # A mark (arrow or bold) that moved while every cell stayed inside its interval: the paired interval was at
    # the edge of excluding 0, so the mark is not robust to the environment. Reported, not a failed conclusion.
    borderline: list[str] = field(default_factory=list)
    decimals: int = units.DECIMALS  # how many its printed form shows (the slack: the smallest visible change)

    @property
    def outside(self) -> list[CellDiff]:
        return [c for c in self.cells if not c.within]

    @property
    def holds(self) -> bool:
        return not self.outside and not self.changes

    @property
    def identical(self) -> bool:
        return all(c.unchanged for c in self.cells) and not self.changes and not self.borderline


def substituted(recorded: Sequence[RunRecord], reruns: Mapping[str, RunRecord]) -> list[RunRecord]:
    """The study's records with each rerun in place of the record it reran."""
    return [reruns.get(r.run_id, r) for r in recorded]


def check(report: ReportSpec, study: str, profile: str, order: Order, recorded: Sequence[RunRecord],
          reruns: Mapping[str, RunRecord], items: Iterable[str] | None = None, tolerance: float = 0.0,
          names: Mapping[str, str] | None = None) -> list[ItemCheck]:
    """Every table, figure and claim of a report (or the named ones) computed from the records and again with the
    reruns in place of the records they reran; a claim is checked whenever it reads a rerun run."""
    from harness import claims as claims_module

    wanted = None if items is None else set(items)
    before, after = Frames.of(recorded), Frames.of(substituted(recorded, reruns))
    out: list[ItemCheck] = []
    for spec in report.tables:
        if wanted is None or spec.name in wanted:
            out.append(check_table(f"{study}/{spec.name}", spec, before, after, order, names or {}, tolerance,
                                   failed=[dict(r.axes) for r in recorded if r.status == "failed"]))
    for spec in report.figures:
        if wanted is None or spec.name in wanted:
            out.append(check_figure(f"{study}/{spec.name}", spec, before, after, order, names or {}, tolerance))
    for claim in report.claims:
        try:
            was = claims_module.compute(claim, before.all, profile, order)
        except HarnessError:  # the records cannot compute it (harness check says why): nothing to compare
            continue
        if wanted is not None and claim.name not in wanted and not (was.runs & set(reruns)):
            continue
        item = ItemCheck(f"{study}/{claim.name}", "claim", scale=units.PERCENT)
        try:
            now = claims_module.compute(claim, after.with_axes(before).all, profile, order)
        except HarnessError as exc:  # a rerun it reads did not finish
            item.changes.append(f"not computable from the reruns ({exc})")
            out.append(item)
            continue
        for old, new in zip(was.parts, now.parts):
            where = "" if old.label is None else f" ({label_text(old.label)})"
            item.cells.append(CellDiff(f"difference{where}", old.difference, new.difference, slack(tolerance, item)))
        if now.verdict != was.verdict:
            item.changes.append(f"verdict {was.verdict} -> {now.verdict}")
        if now.verdict != claim.verdict:
            item.changes.append(f"the rerun gives '{now.verdict}', the study declares '{claim.verdict}'")
        out.append(item)
    return out


@dataclass(frozen=True)
class Frames:
    """A set of records as the renderer reads them: trained runs, baseline runs, and both."""

    trained: pd.DataFrame
    baselines: pd.DataFrame
    all: pd.DataFrame

    @classmethod
    def of(cls, records: Sequence[RunRecord]) -> Frames:
        trained, base = baselines.split_records(records)
        return cls(aggregate.long_frame(trained), aggregate.long_frame(base), aggregate.long_frame(records))

    def with_axes(self, other: Frames) -> Frames:
        """These frames with every column `other` has: a rerun whose runs with some axis all failed lacks that
        axis, and its cells are then missing on the rerun's side (not a KeyError)."""
        def widen(mine: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
            return mine.assign(**{c: None for c in theirs.columns if c not in mine})

        return Frames(widen(self.trained, other.trained), widen(self.baselines, other.baselines),
                      widen(self.all, other.all))


def check_table(name: str, spec: TableSpec, before: Frames, after: Frames, order: Order,
                names: Mapping[str, str], tolerance: float, failed: Sequence[Mapping[str, Any]] = ()) -> ItemCheck:
    item = ItemCheck(name, "table", units.PERCENT if spec.percent else 1.0)
    if before.trained.empty or any(a not in before.trained for a in (spec.rows, spec.columns) if a != "epoch"):
        return item  # a table this profile cannot draw (an axis of another profile) has no cells to compare
    after = after.with_axes(before)
    grids = [tables.cell_values(f.trained, spec, order, failed, names, f.baselines) for f in (before, after)]
    shown = [tables.table(f.trained, spec, order, failed, names, f.baselines) for f in (before, after)]
    for key in dict.fromkeys([*grids[0].values, *grids[1].values]):
        values = [grid.values.get(key) for grid in grids]
        item.cells.append(CellDiff(cell_words(key), *(interval(v) for v in values), slack(tolerance, item)))
    if grids[0].chosen != grids[1].chosen:
        item.changes.append(f"chosen cell {grids[0].chosen} -> {grids[1].chosen}")
    for key, cell in shown[0].cells.items():
        new = shown[1].cells.get(key)
        if new is not None and (cell.mark, cell.best) != (new.mark, new.best):
            item.borderline.append(f"{cell_words(key)}: {marking(cell)} -> {marking(new)}")
    return item


def check_figure(name: str, spec: FigureSpec, before: Frames, after: Frames, order: Order,
                 names: Mapping[str, str], tolerance: float) -> ItemCheck:
    """A figure's points: per plotted group (x, hue or y, metric) the mean over seeds, as its lines are drawn."""
    # A heatmap prints its squares with fewer decimals than a table: a move it cannot show is no change.
    item = ItemCheck(name, "figure", units.PERCENT,
                     decimals=units.HEATMAP_DECIMALS if spec.kind == "heatmap" else units.DECIMALS)
    axes = [a for a in dict.fromkeys((spec.x, spec.hue, spec.y, "metric")) if a]
    if before.trained.empty or any(a not in before.trained for a in axes):
        return item
    points, chosen = [], []
    for frames in (before, after.with_axes(before)):
        trained = baselines.trained_only(frames.trained)
        data = aggregate.restrict(trained, spec.metrics, spec.where, "all" if spec.x == "epoch" else "last")
        data, words = tables.selected(trained, data, spec.select, names, order)
        points.append({key: group.groupby("seed")["value"].mean()
                       for key, group in data.dropna(subset=axes).groupby(axes, sort=False)})
        chosen.append(words)
    for key in dict.fromkeys([*points[0], *points[1]]):
        item.cells.append(CellDiff(cell_words(key), *(interval(p.get(key)) for p in points), slack(tolerance, item)))
    if chosen[0] != chosen[1]:
        item.changes.append(f"chosen cell {chosen[0]} -> {chosen[1]}")
    return item


def slack(tolerance: float, item: ItemCheck) -> float:
    """What a cell may move beyond its interval: the tolerance, or the smallest change its printed form shows."""
    return max(tolerance, units.printed_step(item.decimals) / item.scale)


def interval(values: pd.Series | None) -> aggregate.Interval:
    return aggregate.interval([] if values is None else values.tolist())


def cell_words(key: Any) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    return " / ".join(label_text(p) if not isinstance(p, baselines.Baseline) else str(p) for p in parts)


def marking(cell: tables.Cell) -> str:
    return "bold" if cell.best else {1: "marked higher", -1: "marked lower"}.get(cell.mark, "unmarked")


def report_lines(item: ItemCheck, every_cell: bool = False) -> list[str]:
    """One item as a reader would compare it: a header line, then the cells (all, or those that moved)."""
    if item.identical:
        return [f"{item.name} ({item.kind}): {len(item.cells)} cells, identical to the records"]
    inside = len(item.cells) - len(item.outside)
    head = (f"{item.name} ({item.kind}): {inside} of {len(item.cells)} cells within the recorded 95 % interval"
            + "".join(f"; {c}" for c in item.changes)
            + (f"; borderline marks moved ({'; '.join(item.borderline)})" if item.borderline else "")
            + ("" if item.holds else "  <- DIFFERS"))
    lines = [head, f"  {'cell':<34} {'recorded':>18} {'rerun':>18} {'difference':>11}"]
    for cell in item.cells:
        if every_cell or not cell.unchanged:
            lines.append(f"  {cell.cell[:34]:<34} {text(cell.recorded, item.scale):>18} "
                         f"{text(cell.rerun, item.scale):>18} {units.fixed(cell.difference, item.scale, sign=True):>11}"
                         + ("" if cell.within else "  outside"))
    return lines


def text(value: aggregate.Interval, scale: float) -> str:
    if not np.isfinite(value.mean):
        return "--"
    if value.n < 2 or not np.isfinite(value.half):
        return units.fixed(value.mean, scale)
    return f"{units.fixed(value.mean, scale)} +- {units.fixed(value.half, scale)}"


def check_runs(name: str, kind: str, recorded: Sequence[RunRecord], reruns: Mapping[str, RunRecord],
               run_ids: set[str], tolerance: float) -> ItemCheck:
    """An item drawn some other way (the original-versus-reproduced tables): its runs' cells, one per matrix
    cell, epoch and metric, mean over seeds."""
    item = ItemCheck(name, kind, units.PERCENT)
    frames = [aggregate.long_frame([r for r in records if r.run_id in run_ids])
              for records in (recorded, substituted(recorded, reruns))]
    if frames[0].empty:
        return item
    axes = [c for c in frames[0].columns if c not in ("run_id", "seed", "value") and frames[0][c].notna().any()]
    points = [{key: group.groupby("seed")["value"].mean()
               for key, group in frame.fillna({a: "-" for a in axes}).groupby(axes, sort=False)} for frame in frames]
    for key in dict.fromkeys([*points[0], *points[1]]):
        item.cells.append(CellDiff(cell_words(key), *(interval(p.get(key)) for p in points), slack(tolerance, item)))
    return item


@dataclass(frozen=True)
class Environment:
    """Whether this machine computes as the one that wrote the records: `same` means a rerun must be bit-identical."""

    same: bool
    text: str  # what differs, or what agrees, in words


def environment(records: Sequence[RunRecord], here: Mapping[str, Any]) -> Environment:
    """The records' numerical environment (harness.provenance.numerics) against this machine's."""
    recorded = [r.provenance.numerics for r in records]
    if silent := sum(n is None for n in recorded):
        some = "the records do not say" if silent == len(recorded) else f"{silent} of {len(recorded)} records do not say"
        return Environment(False, f"{some} in which numerical environment they were computed "
                                  "(written before environments were recorded)")
    distinct = {tuple(sorted((k, str(v)) for k, v in n.items())) for n in recorded}
    if len(distinct) > 1:
        keys = sorted({k for n in recorded for k in n if len({str(m.get(k)) for m in recorded}) > 1})
        return Environment(False, f"the records come from {len(distinct)} numerical environments "
                                  f"(differing in {', '.join(keys)})")
    theirs = recorded[0]
    differ = [k for k in sorted(set(theirs) | set(here)) if str(theirs.get(k)) != str(here.get(k))]
    if differ:
        return Environment(False, "this machine differs from the recording one in " + "; ".join(
            f"{k} ({theirs.get(k)} recorded, {here.get(k)} here)" for k in differ))
    return Environment(True, f"same numerical environment as the records ({here.get('cpu')}, "
                             f"{here.get('cpu_capability')}, {here.get('threads')} threads"
                             + (f", {here.get('gpu')}" if here.get("gpu") else "") + ")")


def recorded_threads(records: Sequence[RunRecord]) -> int | None:
    """The one torch thread count every record ran with (None when they differ or do not say): verify uses it,
    so that a thread count is never what makes a rerun differ."""
    counts = {(r.provenance.numerics or {}).get("threads") for r in records}
    return counts.pop() if len(counts) == 1 and None not in counts else None


def verify(target: str, profile: str, results: Path, *, data: Path | None = None, tolerance: float = 1e-6,
           sample: int | None = None, per_metric: bool = False, progress: bool = False) -> bool:
    """`harness verify study[/item]`: rerun the recorded runs (all of the study's, or exactly those behind one
    table, figure or claim; the first `sample`) in a scratch folder, parents first, and compare. In the records'
    numerical environment every number must be identical (within `tolerance`); elsewhere the tables, figures and
    claims must say what they said. Prints one line per rerun and per item on stdout, the environment on stderr;
    True when verified."""
    import sys
    import tempfile

    import torch

    from harness import execute, provenance, spec, store
    from harness import plan as planner

    name, _, item = target.partition("/")
    study = spec.load(name, profile)
    scan = store.scan(results, study.name, study.profile)
    recorded = [r for r in study.runs if r.run_id in scan.ok]
    if not recorded:
        raise HarnessError(f"no finished runs of {study.name}/{study.profile} in {results} to verify; "
                           f"run `harness run {study.name} --profile {study.profile}` first")
    if item:  # one table, figure or claim (its caption names it study/item): exactly the runs behind it
        from harness.render import items

        frame = aggregate.long_frame(planner.study_records(study, results))
        behind = items.runs_behind(study.spec.report, item, frame, study.profile, study.axes)
        recorded = [r for r in recorded if r.run_id in behind]
        if not recorded:
            raise HarnessError(f"{target}: no finished run stands behind it in {results}")
    chosen = recorded[:sample] if sample else recorded
    # A run that continues another needs its parent's final state: the parents are rerun (and compared) first.
    by_id, wanted = {r.run_id: r for r in study.runs}, {r.run_id for r in chosen}
    for run in chosen:
        parent = run.parent
        while parent in by_id and parent not in wanted:
            wanted.add(parent)
            parent = by_id[parent].parent
    chosen = planner.parents_first([r for r in study.runs if r.run_id in wanted])
    records = planner.study_records(study, results)
    threads = recorded_threads([scan.ok[r.run_id] for r in chosen if r.run_id in scan.ok])
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)  # the records' thread count: one difference fewer with the recording host
    env = environment([scan.ok[r.run_id] for r in chosen if r.run_id in scan.ok], provenance.numerics())
    print(f"{study.name}/{study.profile}: rerunning {len(chosen)} of {len(recorded)} recorded runs; "
          + (f"{env.text}: every number must be identical (tolerance {tolerance} absolute)" if env.same else
             f"{env.text}: bit-identity is not expected, so the tables, figures and claims are compared with the "
             "records' seed-to-seed spread"), file=sys.stderr)
    worst, unfinished, reruns = 0.0, 0, {}
    parents = {r.parent for r in chosen if r.parent}
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as scratch:
        for run in chosen:
            if run.run_id not in scan.ok:
                raise HarnessError(f"run {run.run_id} {run.axes} seed={run.seed} is not recorded, and runs that "
                                   "continue from it need it; run the study first")
            rerun = execute.rerun(run, Path(scratch), data_root=data, progress=progress,
                                  keep_state=run.run_id in parents)
            store.write(Path(scratch), rerun)
            reruns[run.run_id] = rerun
            if rerun.status != "ok":
                unfinished += 1
            diffs = execute.compare_metrics(scan.ok[run.run_id].metrics, rerun.metrics, tolerance)
            largest = max((diff for _, diff in diffs), default=0.0)
            worst = max(worst, largest)
            print(f"{run.run_id} {run.axes} seed={run.seed}: {rerun.status}"
                  + (f" ({rerun.error.type}: {rerun.error.message})" if rerun.error else
                     f", largest metric difference {largest:.2e}"))
            for line, _ in diffs if per_metric else ():
                print(line)
    checks = check(study.spec.report, study.name, study.profile, study.axes, records, reruns,
                   [item] if item else None, tolerance, study.spec.report.axis_labels)
    if item in ("reference", "protocols"):
        checks.insert(0, check_runs(target, item, records, reruns, set(reruns), tolerance))
    for one in checks:
        print("\n".join(report_lines(one, per_metric)))
    differing = [c.name for c in checks if not c.holds]
    identical = worst <= tolerance
    ok = not unfinished and (identical if env.same else not differing)
    print(f"largest difference {worst:.2e} ({'identical' if identical else 'not identical'} within tolerance "
          f"{tolerance}); {len(checks) - len(differing)} of {len(checks)} tables, figures and claims hold"
          + (f" ({', '.join(differing)} differ)" if differing else "")
          + (f"; {unfinished} rerun(s) did not finish" if unfinished else "")
          + (": VERIFIED" if ok else ": NOT VERIFIED (" + ("same environment, so every number must be identical"
                                                          if env.same else "the conclusions differ") + ")"))
    return ok
