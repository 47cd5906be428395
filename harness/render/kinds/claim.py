"""The claim kind (`report.claims`): each finding's sentence with its numbers as macros computed from the records
(findings.tex) and its verdict; verified by recomputing the difference and the verdict with the reruns in place,
whenever it reads a rerun run."""

from __future__ import annotations

import re
from typing import Any

from harness import claims, units
from harness.errors import HarnessError
from harness.render import latex
from harness.render.axes import label_text
from harness.render.kinds.base import CellDiff, ItemCheck, Rerun, slack
from harness.report import ClaimSpec, ReportSpec

NAME = "claim"
SECTION = "findings"


def specs(report: ReportSpec) -> list[ClaimSpec]:
    return list(report.claims)


def item_name(spec: ClaimSpec) -> str:
    return spec.name


def inputs(report: ReportSpec) -> list[str]:
    return ["findings"] if report.claims else []


def write(chapter: Any, facts: dict[str, Any]) -> list[str]:
    """findings.tex: each claim's sentence, its numbers as macros (defined in the same file from the records),
    its verdict and the original's claim it addresses. A claim this profile's records cannot compute says so."""
    items = []
    for claim, result in chapter.data.claims:
        if isinstance(result, HarnessError):
            items.append({"claim": claim, "missing": str(result)})
            continue
        numbers = result.numbers()
        macros = {field: claims.macro_name(chapter.study.name, claim.name, field) for field in numbers}
        items.append({"claim": claim, "verdict": result.verdict, "numbers": numbers, "macros": macros,
                      "sentence": sentence_tex(claim.sentence, chapter.study.name, claim.name)})
    if not items:
        return []
    return [chapter.write("findings.tex", "findings.tex.j2", items=items, profile=chapter.study.profile)]


def sentence_tex(sentence: str, study: str, claim: str) -> str:
    """A claim's sentence as LaTeX: its text escaped, each {placeholder} the macro of that number."""
    parts = re.split(r"\{(\w+)\}", sentence)
    return "".join(latex.latex_escape(part) if i % 2 == 0 else f"\\claimval{{{study}}}{{{claim}}}{{{part}}}"
                   for i, part in enumerate(parts))


def runs_behind(spec: ClaimSpec, frame: Any, profile: str, order: Any) -> set[str]:
    return set(claims.compute(spec, frame, profile, order).runs)


def verify(spec: ClaimSpec, rerun: Rerun) -> ItemCheck | None:
    try:
        was = claims.compute(spec, rerun.before.all, rerun.profile, rerun.order)
    except HarnessError:  # the records cannot compute it (harness check says why): nothing to compare
        return None
    if not rerun.asked(spec.name) and not (was.runs & set(rerun.reruns)):
        return None
    item = ItemCheck(f"{rerun.study}/{spec.name}", NAME, scale=units.PERCENT)
    try:
        now = claims.compute(spec, rerun.after.with_axes(rerun.before).all, rerun.profile, rerun.order)
    except HarnessError as exc:  # a rerun it reads did not finish
        item.changes.append(f"not computable from the reruns ({exc})")
        return item
    for old, new in zip(was.parts, now.parts):
        where = "" if old.label is None else f" ({label_text(old.label)})"
        item.cells.append(CellDiff(f"difference{where}", old.difference, new.difference,
                                   slack(rerun.tolerance, item)))
    if now.verdict != was.verdict:
        item.changes.append(f"verdict {was.verdict} -> {now.verdict}")
    if now.verdict != spec.verdict:
        item.changes.append(f"the rerun gives '{now.verdict}', the study declares '{spec.verdict}'")
    return item
