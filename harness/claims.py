"""Claims as data: each study's `report.claims` states a sentence, the computation over records that supports it (a
difference between two cells, paired by seed, with its 95% t-interval; optionally one per label of an axis), the
original's claim it addresses, and the verdict it expects. `compute` recomputes a claim from a results frame;
`check` compares every recomputed verdict with the declared one, and the renderer writes the chapter's Findings from
the same results, so a number in the prose is never typed by hand."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import aggregate, store
from harness.catalog import BASELINE_AXIS
from harness.plan import records_of
from harness.errors import HarnessError
from harness.report import LABEL_PLACEHOLDER, ClaimCell, ClaimSpec, where_for
from harness import units


@dataclass(frozen=True)
class Part:
    """One difference: a label of `per` (None without it), the cells' per-seed values and their paired difference."""

    label: Any
    a: dict[Any, float]
    b: dict[Any, float]
    difference: aggregate.Interval

    @property
    def side(self) -> int:
        """+1 / -1: the interval lies above / below 0; 0: it contains 0 (or cannot be computed)."""
        d = self.difference
        if d.n < 2 or not np.isfinite(d.half):
            return 0
        return 1 if d.low > 0 else -1 if d.high < 0 else 0


@dataclass(frozen=True)
class Result:
    claim: ClaimSpec
    parts: list[Part]
    verdict: str
    runs: frozenset[str] = frozenset()  # the run_ids its cells read
    labels: dict[str, str] = field(default_factory=dict)  # {a_<axis>}: a cell's labels on an axis, in words

    def numbers(self) -> dict[str, str]:
        """The sentence's placeholders as text (percentage points, two decimals; signed for differences)."""
        if not self.parts:
            return dict(self.labels)
        diffs = [p.difference for p in self.parts]
        means = [d.mean for d in diffs]
        a = [aggregate.interval(p.a.values()).mean for p in self.parts]
        b = [aggregate.interval(p.b.values()).mean for p in self.parts]

        def signed(value: float) -> str:
            return units.fixed(value, sign=True)

        def span(values: list[float]) -> str:
            low, high = units.fixed(min(values)), units.fixed(max(values))
            return low if low == high else f"{low} to {high}"

        return {"mean": signed(means[0]), "low": signed(diffs[0].low), "high": signed(diffs[0].high),
                "min": signed(min(means)), "max": signed(max(means)), "lowest": signed(min(d.low for d in diffs)),
                "highest": signed(max(d.high for d in diffs)), "a": span(a), "b": span(b),
                "n": str(min(d.n for d in diffs)), **self.labels}


def cell_frame(frame: pd.DataFrame, cell: ClaimCell, profile: str,
               order: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """The rows of a cell's runs (strict `where`; baselines only when asked for), its metric at its epoch rule."""
    where = where_for(cell, profile, order)  # the same strict `where` as the protocols table
    return aggregate.cell_rows(frame, where, cell.metric, cell.epoch, cell.select,
                               trained_only=BASELINE_AXIS not in where)


def verdict_of(claim: ClaimSpec, parts: Sequence[Part]) -> str:
    """reproduced: every difference's interval on the side the original predicts; contradicted: every one on the
    other side; otherwise not reproduced (no evidence either way, or mixed). With expect "same": reproduced while
    every interval contains 0, contradicted once one excludes it."""
    sides = [p.side for p in parts]
    if claim.expect == "same":
        computable = [p for p in parts if p.difference.n >= 2 and np.isfinite(p.difference.half)]
        if not computable or len(computable) < len(parts):
            return "not reproduced"
        return "reproduced" if all(s == 0 for s in sides) else "contradicted"
    expected = 1 if claim.expect == "higher" else -1
    if sides and all(s == expected for s in sides):
        return "reproduced"
    if sides and all(s == -expected for s in sides):
        return "contradicted"
    return "not reproduced"


def compute(claim: ClaimSpec, frame: pd.DataFrame, profile: str,
            order: Mapping[str, Sequence[Any]] | None = None) -> Result:
    """A claim's differences and verdict from a frame of every record (baselines included). A cell without values
    is a HarnessError naming the claim: a record it needs is missing."""
    if claim.verdict == "not testable here":
        return Result(claim, [], "not testable here")
    assert claim.a is not None and claim.b is not None
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
        pa, pb = aggregate.seed_values(a).to_dict(), aggregate.seed_values(b).to_dict()
        parts.append(Part(label, pa, pb, aggregate.paired_difference(pa, pb)))
    runs = frozenset(a_rows["run_id"]) | frozenset(b_rows["run_id"])
    return Result(claim, parts, verdict_of(claim, parts), runs, cell_labels(claim, {"a": a_rows, "b": b_rows}, order))


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


def macro_name(study: str, claim: str, field: str) -> str:
    return f"claim:{study}:{claim}:{field}"


def unread_runs(claim: ClaimSpec, study, scan: store.Scan) -> list[str]:  # noqa: ANN001 (spec.Study)
    """The runs of the study's matrix a claim's cells should read that give it nothing: missing, unreadable,
    failed, or without a finite value of the cell's metric; one phrase each. A run is expected where its cell's
    `where` names it, unless the recorded runs of its setting (its axes, any seed) all lack that metric."""
    import pandas as pd

    if claim.a is None or claim.b is None:
        return []
    runs = pd.DataFrame([{**run.axes, "run_id": run.run_id, "seed": run.seed} for run in study.runs])
    found = []
    for cell in (claim.a, claim.b):
        where = where_for(cell, study.profile, study.axes)
        wanted = aggregate.strictly(runs, where)
        if BASELINE_AXIS not in where and BASELINE_AXIS in wanted:
            wanted = wanted[wanted[BASELINE_AXIS].isna()]
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


def study_results(study, results) -> tuple[list[Result], list[str]]:  # noqa: ANN001 (spec.Study, Path)
    """Every claim of one study recomputed from its records, and the problems found (one line each): a record
    edited after it was written, a run a claim reads that is missing, unreadable, failed or not finite (for every
    seed the study declares), a verdict the records no longer give."""
    problems, computed = [], []
    scan = store.scan(results, study.name, study.profile)  # read once: the claims and the integrity check share it
    frame = aggregate.long_frame(records_of(study, scan))
    for claim in study.spec.report.claims:
        if unread := unread_runs(claim, study, scan):
            more = f" (and {len(unread) - 1} more)" if len(unread) > 1 else ""
            problems.append(f"{study.name}: claim '{claim.name}': {unread[0]}{more}; run `harness run {study.name} "
                            f"--profile {study.profile}` (a bad file: delete it first), or restore it from git")
            continue
        try:
            result = compute(claim, frame, study.profile, study.axes)
        except HarnessError as exc:
            problems.append(f"{study.name}: {exc}")
            continue
        computed.append(result)
        if result.verdict != claim.verdict:
            problems.append(f"{study.name}: claim '{claim.name}': the records give '{result.verdict}', the study "
                            f"file declares '{claim.verdict}' ({describe(result)})")
    for record in [*scan.ok.values(), *scan.failed.values()]:  # as written, before relabelling
        if not record.intact():
            readers = [r.claim.name for r in computed if record.run_id in r.runs]
            which = f"claim{'s' if len(readers) > 1 else ''} '{', '.join(readers)}': " if readers else ""
            problems.append(f"{study.name}: {which}record {record.run_id} {record.axes} was edited after it was "
                            f"written (its digest does not match its content); restore it (git checkout) or "
                            f"rerun it")
    return computed, problems


def describe(result: Result) -> str:
    """The differences behind a verdict, in one line."""
    return "; ".join(
        ("" if p.label is None else f"{p.label}: ")
        + f"{units.fixed(p.difference.mean, sign=True)} [{units.fixed(p.difference.low, sign=True)}, "
          f"{units.fixed(p.difference.high, sign=True)}] pp"
        for p in result.parts) or "nothing computed"


@dataclass(frozen=True)
class ProfileCheck:
    """`harness check` on one profile: the problems found (one line each), the claims declared, the verdicts."""

    problems: list[str]
    total: int
    verdicts: dict[str, int]

    @property
    def summary(self) -> str:
        return ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items())) or "none computed"


def check_profile(studies: Sequence[str], profile: str, results, paper) -> ProfileCheck:  # noqa: ANN001 (Path)
    """Every claim of these studies recomputed from the profile's records, and the chapters' prose in `paper`
    searched for hand-typed result numbers."""
    from harness import spec

    if not (Path(paper) / "main.tex").is_file():  # a mistyped --paper would otherwise check no prose and pass
        raise HarnessError(f"--paper {paper}: no main.tex there; give the paper folder (the one holding main.tex)")
    problems, total, verdicts = [], 0, {}
    for name in studies:
        study = spec.load(name, profile, components=False)
        computed, found = study_results(study, results)
        problems += found
        total += len(study.spec.report.claims)
        for result in computed:
            verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
    return ProfileCheck(problems + prose_problems(paper), total, verdicts)


def prose_problems(paper) -> list[str]:  # noqa: ANN001 (Path)
    """Hand-typed result numbers in the chapters and main.tex, one line each with file and line."""
    from harness.prose import hand_typed_at

    problems = []
    for path in sorted([paper / "main.tex", *(paper / "chapters").glob("*.tex")]):
        if not path.exists():
            continue
        text = "\n".join(_uncommented(line) for line in path.read_text().splitlines())
        for offset, found in hand_typed_at(text):
            problems.append(f"{path}:{text.count(chr(10), 0, offset) + 1}: a result number typed by hand "
                            f"({found!r}); state it as a claim in the study file and let the Findings show it")
    return problems


def _uncommented(line: str) -> str:
    """A LaTeX line without its comment (a % not preceded by a backslash)."""
    return re.split(r"(?<!\\)%", line, maxsplit=1)[0]
