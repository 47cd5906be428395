"""The reference kind (`report.reference`): the original's reported numbers beside ours in its setting, read from
the CSV next to the study file; verified on its runs' cells (a table drawn from two sources has no interval of its
own), when asked for by name."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.catalog import BASELINE_AXIS
from harness.render import tables
from harness.render.axes import axis_name
from harness.render.kinds.base import ItemCheck, Rerun, check_runs, rows_behind
from harness.report import ReferenceSpec, ReportSpec, where_for

NAME = "reference"
SECTION = "compared"


def specs(report: ReportSpec) -> list[ReferenceSpec]:
    return [report.reference] if report.reference is not None else []


def item_name(spec: ReferenceSpec) -> str:
    return NAME


def inputs(report: ReportSpec) -> list[str]:
    return [NAME] if report.reference is not None else []


def write(chapter: Any, facts: dict[str, Any]) -> list[str]:
    ref = chapter.study.spec.report.reference
    if ref is None:
        return []
    if absent := chapter.absent(ref.axis):
        return chapter.omitted("reference.tex", absent)
    original = pd.read_csv(chapter.study.path.parent / ref.file)
    data = tables.reference(chapter.frame, ref, original, chapter.study.axes, chapter.study.profile)
    return [chapter.write("reference.tex", "reference.tex.j2", ref=ref, their_cols=data.their_cols,
                          our_cols=data.our_cols, body=data.body, facts=facts,
                          row_label=axis_name(ref.axis, chapter.names), by_epoch=ref.columns is not None,
                          # null (runs without that axis) is a filter, not a setting: the caption leaves it out
                          shown_where={k: v for k, v in where_for(ref, chapter.study.profile).items()
                                       if v is not None})]


def runs_behind(spec: ReferenceSpec, frame: Any, profile: str, order: Any) -> set[str]:
    metrics = [spec.metric, *(c.ours for c in spec.values)]
    return rows_behind(frame[frame[BASELINE_AXIS].isna()] if BASELINE_AXIS in frame else frame, metrics,
                       where_for(spec, profile), [spec.axis])


def verify(spec: ReferenceSpec, rerun: Rerun) -> ItemCheck | None:
    if rerun.wanted is None or NAME not in rerun.wanted:
        return None
    return check_runs(f"{rerun.study}/{NAME}", NAME, rerun, set(rerun.reruns))
