"""The protocols kind (`report.protocols`): per claim of the original, its number, ours run its way, ours
corrected, and the paired difference; verified on its runs' cells, when asked for by name."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness import aggregate
from harness.render import protocols
from harness.render.axes import axis_name
from harness.render.kinds.base import ItemCheck, Rerun, check_runs
from harness.report import ProtocolSpec, ReportSpec, where_for

NAME = "protocols"
SECTION = "compared"


def specs(report: ReportSpec) -> list[ProtocolSpec]:
    return [report.protocols] if report.protocols is not None else []


def item_name(spec: ProtocolSpec) -> str:
    return NAME


def inputs(report: ReportSpec) -> list[str]:
    return [NAME] if report.protocols is not None else []


def write(chapter: Any, facts: dict[str, Any]) -> list[str]:
    spec = chapter.study.spec.report.protocols
    if spec is None:
        return []
    if absent := chapter.absent(*spec.rows):
        return chapter.omitted("protocols.tex", absent)
    original = pd.read_csv(chapter.study.path.parent / spec.file)
    rows = protocols.protocol_rows(chapter.frame, spec, original, chapter.study.axes, chapter.study.profile,
                                   chapter.names)
    if not rows:
        return chapter.omitted("protocols.tex", ["(no run of the original's protocol)"])
    return [chapter.write("protocols.tex", "protocols.tex.j2", spec=spec, rows=rows, facts=facts,
                          axes=[axis_name(a, chapter.names) for a in spec.rows],
                          several=len({r.claim for r in rows}) > 1, ns=sorted({r.n for r in rows}),
                          notes=[c for c in spec.claims if c.note])]


def runs_behind(spec: ProtocolSpec, frame: Any, profile: str, order: Any) -> set[str]:
    found: set[str] = set()
    for claim in spec.claims:
        for cell in (claim.faithful, claim.corrected):
            runs = aggregate.strictly(frame, where_for(cell, profile))
            found |= set(aggregate.restrict(runs, [cell.metric or claim.metric])["run_id"])
    return found


def verify(spec: ProtocolSpec, rerun: Rerun) -> ItemCheck | None:
    if rerun.wanted is None or NAME not in rerun.wanted:
        return None
    return check_runs(f"{rerun.study}/{NAME}", NAME, rerun, set(rerun.reruns))
