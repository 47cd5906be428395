"""Does a rerun say what the records say? Compared at the level a reader reads: each cell of a table or figure
(recorded mean and 95 % interval against the rerun's mean), the cell a selection chose, the marked cells, and
each claim's verdict. `harness verify` uses it when the rerun's numerical environment differs from the records'
(another CPU, another thread count: float sums round differently, so bit-identity is not to be had there)."""

from __future__ import annotations

from collections import Counter
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
    """One item as a reader would compare it: a header line, then the cells (all, or those that moved), named
    as the PDF names them, with differences in the item's units."""
    what = f"{item.name} ({item.kind}{', ' + item.shows if item.shows else ''})"
    note = f"; {item.note}" if item.note else ""
    if item.identical:
        return [f"{what}: {plural(len(item.cells), 'cell')}, identical to the records{note}"]
    inside = len(item.cells) - len(item.outside)
    head = (f"{what}: {inside} of {len(item.cells)} cells within the recorded 95 % interval"
            + "".join(f"; {c}" for c in item.changes)
            + (f"; borderline marks moved ({'; '.join(item.borderline)})" if item.borderline else "") + note
            + ("" if item.holds else "  <- DIFFERS"))
    shown = [c for c in item.cells if every_cell or not c.unchanged]
    width = max([len("cell"), *(len(c.cell) for c in shown)])
    unit = f" ({item.unit})" if item.unit else ""
    lines = [head, f"  {'cell':<{width}} {'recorded':>16} {'rerun':>16} {'difference' + unit:>19}"]
    for cell in shown:
        lines.append(f"  {cell.cell:<{width}} {text(cell.recorded, item.scale):>16} "
                     f"{text(cell.rerun, item.scale):>16} {units.fixed(cell.difference, item.scale, sign=True):>19}"
                     + ("" if cell.within else "  outside"))
    return lines


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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


def environments(records: Sequence[RunRecord]) -> list[str]:
    """Which records came from which numerical environment, most first: '10 from AMD EPYC 9R14 (avx512, 2
    threads)'."""
    counts = Counter(machine(record.provenance.numerics) for record in records)
    return [f"{count} from {key}" for key, count in counts.most_common()]


def machine(numerics: Mapping[str, Any] | None) -> str:
    """A numerical environment (harness.provenance.numerics) in a few words."""
    if numerics is None:
        return "a machine it does not name (written before environments were recorded)"
    return (f"{numerics.get('cpu')} ({numerics.get('cpu_capability')}, {numerics.get('threads')} threads"
            + (f", {numerics['gpu']}" if numerics.get("gpu") else "") + ")")


def first_line(env: Environment, here: Mapping[str, Any], tolerance: float) -> str:
    """What the comparison demands, in one plain line: the first a reviewer reads."""
    if env.same:
        return (f"bit-identical: this machine computes as the one that made the records ({machine(here)}), so "
                f"every rerun number must equal the recorded one (tolerance {tolerance:g})")
    return (f"another environment: {env.text}; bit-identity is not expected, so each cell the items show is checked "
            "against the records' seed-to-seed spread (its 95 % interval)")


@dataclass
class Review:
    """What `verify` found, kept for the report: the demand, the records' environments, each rerun, each item."""

    target: str
    profile: str
    demand: str
    recorded_from: list[str]
    here: str
    estimate_s: float
    runs: list[str]
    checks: list[ItemCheck]
    verdict: str
    took_s: float = 0.0


def verify(target: str, profile: str, results: Path, *, data: Path | None = None, tolerance: float = 1e-6,
           sample: int | None = None, per_metric: bool = False, progress: bool = False,
           overrides: tuple = (), keep: Path | None = None, pdf: bool = True) -> bool:
    """`harness verify study[/item]`: rerun the recorded runs (all of the study's, or exactly those behind one
    table, figure or claim; the first `sample`) in a scratch folder, parents first, and compare. In the records'
    numerical environment every number must be identical (within `tolerance`); elsewhere the tables, figures and
    claims must say what they said. Prints what it demands first, an estimate, one line per rerun with the time
    left, each item's cells as the PDF names them, and the verdict last; True when verified.

    With `keep`, the reruns stay: keep/results holds the profile's records with each rerun in place of its
    record, keep/report.md every cell recorded against rerun, and keep/paper/build/main.pdf the thesis built
    from those results (so a reviewer can send the report and the PDF it speaks of)."""
    import tempfile
    import time

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
    records = planner.records_of(study, scan)  # every record of the study, as its tables read them
    if item:  # one table, figure or claim (its caption names it study/item): exactly the runs behind it
        from harness.render import items

        frame = aggregate.long_frame(records)
        behind = items.runs_behind(study.spec.report, item, frame, study.profile, study.axes)
        recorded = [r for r in recorded if r.run_id in behind]
        if not recorded:
            raise HarnessError(f"{target}: no finished run stands behind it in {results}")
    asked = recorded[:sample] if sample else recorded
    chosen = asked
    # A run that continues another needs its parent's final state: the parents are rerun (and compared) first.
    by_id, wanted = {r.run_id: r for r in study.runs}, {r.run_id for r in chosen}
    for run in chosen:
        parent = run.parent
        while parent in by_id and parent not in wanted:
            wanted.add(parent)
            parent = by_id[parent].parent
    chosen = planner.parents_first([r for r in study.runs if r.run_id in wanted])
    for run in chosen:
        if run.run_id not in scan.ok:
            raise HarnessError(f"run {run.run_id} {run.axes} seed={run.seed} is not recorded, and runs that "
                               "continue from it need it; run the study first")
    theirs = [scan.ok[r.run_id] for r in chosen]
    threads = recorded_threads(theirs)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)  # the records' thread count: one difference fewer with the recording host
    here = provenance.numerics()
    env = environment(theirs, here)
    review = Review(target, study.profile, first_line(env, here, tolerance), environments(theirs), machine(here),
                    sum(r.timing.wall_s for r in theirs), [], [], "")
    print(review.demand)
    print(f"records: {'; '.join(review.recorded_from)}; this machine: {review.here}")
    print(f"{target}: rerunning {len(chosen)} of the {len(recorded)} recorded runs behind it"
          + (f" (and {len(chosen) - len(asked)} parent(s) they continue from)" if len(chosen) > len(asked) else "")
          + f"; about {units.duration(review.estimate_s)}, judged from the records' own times on their machine",
          flush=True)
    worst, unfinished, reruns = 0.0, 0, {}
    parents = {r.parent for r in chosen if r.parent}
    started, done_recorded = time.monotonic(), 0.0
    scratch_dir = tempfile.TemporaryDirectory(prefix="harness-verify-")
    scratch = Path(scratch_dir.name)
    try:
        for i, run in enumerate(chosen, 1):
            rerun = execute.rerun(run, scratch, data_root=data, progress=progress,
                                  keep_state=run.run_id in parents)
            store.write(scratch, rerun)
            reruns[run.run_id] = rerun
            if rerun.status != "ok":
                unfinished += 1
            diffs = execute.compare_metrics(scan.ok[run.run_id].metrics, rerun.metrics, tolerance)
            largest = max((diff for _, diff in diffs), default=0.0)
            worst = max(worst, largest)
            elapsed = time.monotonic() - started
            done_recorded += scan.ok[run.run_id].timing.wall_s
            left = elapsed / max(done_recorded, 1e-9) * (review.estimate_s - done_recorded)
            cell = ", ".join(f"{axis} {aggregate.label_text(label)}" for axis, label in run.axes.items())
            line = (f"[{i}/{len(chosen)}] {run.run_id} ({cell}, seed {run.seed}): {rerun.status}"
                    + (f" ({rerun.error.type}: {rerun.error.message})" if rerun.error else
                       f", largest metric difference {units.fixed(largest)} points")
                    + (f"; about {units.duration(left)} left" if i < len(chosen) else
                       f"; all done in {units.duration(elapsed)}"))
            review.runs.append(line)
            print(line, flush=True)
            for text_line, _ in diffs if per_metric else ():
                print(text_line)
        review.took_s = time.monotonic() - started
        from harness import claims

        found, _ = claims.profile_claims([study.name], study.profile, results)  # the family claims are judged in
        others = {(name, claim.name): result for name, (one, computed) in found.items()
                  for claim, result in zip(one.spec.report.claims, computed)}
        review.checks = check(study.spec.report, study.name, study.profile, study.axes, records, reruns,
                              [item] if item else None, tolerance, study.spec.report.axis_labels, others,
                              study.spec.profiles[study.profile].claims_on_original)
        for one in review.checks:
            print("\n".join(report_lines(one, per_metric)))
        differing = [c.name for c in review.checks if not c.holds]
        identical = worst <= tolerance
        ok = not unfinished and (identical if env.same else not differing)
        largest_text = "every rerun number equal to its record, bit for bit" if worst == 0 else (
            f"largest difference of any rerun number {units.fixed(worst)} points"
            + (f" ({worst:.1e} as a fraction)" if worst < units.printed_step() / units.PERCENT else ""))
        review.verdict = (
            f"{len(review.checks) - len(differing)} of {len(review.checks)} tables, figures and claims hold"
            + (f" ({', '.join(differing)} differ)" if differing else "")
            + (f"; {unfinished} rerun(s) did not finish" if unfinished else "")
            + "; " + largest_text
            + ((" (identical within the tolerance)" if identical else " (NOT identical: the same environment must "
                "give the same numbers)") if env.same else " (bit-identity not expected here)")
            + (": VERIFIED" if ok else ": NOT VERIFIED"))
        if keep is not None:
            where = keep_review(keep, review, study.profile, results, scratch, pdf)
            print(f"kept: {where / 'report.md'} (every cell, recorded against rerun) and the reruns in "
                  f"{where / 'results'}" + (f"; the thesis built from them: {where / 'paper' / 'build' / 'main.pdf'}"
                                             if (where / "paper" / "build" / "main.pdf").exists() else ""))
        print(review.verdict)
        return ok
    finally:
        scratch_dir.cleanup()


def keep_review(keep: Path, review: Review, profile: str, results: Path, scratch: Path, pdf: bool) -> Path:
    """keep/: results (the profile's records of every study, each rerun in place of its record), report.md and,
    with `pdf`, paper/ rendered from those results. Built beside `keep` and swapped in whole, so an interrupted
    report never leaves half a folder; an earlier report in `keep` is replaced."""
    import shutil

    from harness import render, spec

    keep = keep.resolve()
    partial = keep.with_name(keep.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for study_dir in sorted(p for p in results.glob(f"*/{profile}") if p.is_dir()):
        shutil.copytree(study_dir, partial / "results" / study_dir.parent.name / profile,
                        ignore=shutil.ignore_patterns(".*", "*.tmp"))
    for record in scratch.glob(f"*/{profile}/*.json"):  # the reruns, in place of the records they reran
        target = partial / "results" / record.parent.parent.name / profile / record.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(record, target)
    (partial / "report.md").write_text(report_markdown(review))
    if pdf:
        paper = partial / "paper"
        render.prepare(paper)
        render.render(spec.list_studies(), profile, partial / "results", paper)
        render.compile_pdf(paper)
    if keep.exists():
        shutil.rmtree(keep)
    partial.rename(keep)
    return keep


def report_markdown(review: Review) -> str:
    """The reviewer's report: what was demanded, where the records and the reruns were computed, each rerun,
    every cell of every item recorded against rerun (in the item's units), and the verdict last."""
    lines = [f"# Rerun of {review.target} (profile {review.profile})", "", review.demand + ".", "",
             f"- Records: {'; '.join(review.recorded_from)}.", f"- Reruns: {review.here}.",
             f"- Time: about {units.duration(review.estimate_s)} expected from the records' own times; "
             f"the reruns took {units.duration(review.took_s)}.", "", "## Reruns", ""]
    lines += [f"- {line}" for line in review.runs]
    for item in review.checks:
        inside = len(item.cells) - len(item.outside)
        lines += ["", f"## {item.name} ({item.kind}{', ' + item.shows if item.shows else ''})", "",
                  f"{inside} of {len(item.cells)} cells within the recorded 95 % interval"
                  + "".join(f"; {c}" for c in item.changes) + (f"; {item.note}" if item.note else "")
                  + ("" if item.holds else ". **Differs.**"), ""]
        if item.borderline:
            lines += [f"Borderline marks that moved: {'; '.join(item.borderline)}.", ""]
        unit = f" ({item.unit})" if item.unit else ""
        lines += [f"| cell | recorded | rerun | difference{unit} | within the interval |", "|---|---|---|---|---|"]
        lines += [f"| {c.cell} | {text(c.recorded, item.scale)} | {text(c.rerun, item.scale)} | "
                  f"{units.fixed(c.difference, item.scale, sign=True)} | {'yes' if c.within else '**no**'} |"
                  for c in item.cells]
    lines += ["", "## Verdict", "", review.verdict, ""]
    return "\n".join(lines)
