"""Does a rerun say what the records say? Compared at the level a reader reads: each cell of a table or figure
(recorded mean and 95 % interval against the rerun's mean), the cell a selection chose, the marked cells, and
each claim's verdict. `harness verify` uses it when the rerun's numerical environment differs from the records'
(another CPU, another thread count: float sums round differently, so bit-identity is not to be had there)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import aggregate
from harness.errors import HarnessError
from harness import kinds
# The comparison of one item (its cells against their intervals, what a reader sees change) is every kind's.
from harness.render.compare import CellDiff, ItemCheck, Rerun  # noqa: F401 (CellDiff: part of this API)
from harness.report import ReportSpec
from harness.store import RunRecord
from harness import units

Order = Mapping[str, Sequence[Any]]


def check(report: ReportSpec, study: str, profile: str, order: Order, recorded: Sequence[RunRecord],
          reruns: Mapping[str, RunRecord], items: Iterable[str] | None = None, tolerance: float = 0.0,
          names: Mapping[str, str] | None = None, others: Mapping[tuple[str, str], Any] | None = None,
          on_original: Any = ()) -> list[ItemCheck]:
    """Every item of a report (or the named ones) computed from the records and again with the reruns in place
    of the records they reran, each by its kind (harness.kinds); a claim is checked whenever it reads a
    rerun run, the original-versus-ours tables when asked for by name."""
    rerun = Rerun(study, profile, order, names or {}, recorded, reruns, tolerance,
                  None if items is None else set(items), others or {}, on_original)
    return [found for kind, spec in kinds.items(report) if (found := kind.verify(spec, rerun)) is not None]


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
           sample: int | None = None, per_metric: bool = False, progress: bool = False,
           overrides: tuple = ()) -> bool:
    """`harness verify study[/item]`: rerun the recorded runs (all of the study's, or exactly those behind one
    table, figure or claim; the first `sample`) in a scratch folder, parents first, and compare. In the records'
    numerical environment every number must be identical (within `tolerance`); elsewhere the tables, figures and
    claims must say what they said. Prints one line per rerun and per item on stdout, the environment on stderr;
    True when verified."""
    import sys
    import tempfile

    import torch

    from harness import execute, provenance, search, spec, store
    from harness import plan as planner

    name, _, item = target.partition("/")
    study = spec.load(name, profile, overrides=overrides)  # with the --set the records were made with
    scan = store.scan(results, study.name, study.profile)
    study = search.with_chosen(study, scan)  # a declared search's chosen runs, as its records choose them
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
    from harness import claims

    found, _ = claims.profile_claims([study.name], study.profile, results)  # the family the claims are judged in
    others = {(name, claim.name): result for name, (one, computed) in found.items()
              for claim, result in zip(one.spec.report.claims, computed)}
    checks = check(study.spec.report, study.name, study.profile, study.axes, records, reruns,
                   [item] if item else None, tolerance, study.spec.report.axis_labels, others,
                   study.spec.profiles[study.profile].claims_on_original)
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
