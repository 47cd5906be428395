"""Which recorded runs stand behind one table or figure of a chapter (named `study/item` in its caption), so that a
reviewer can rerun exactly those: `harness verify study/item`, `make table T=study/item`."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from harness import aggregate
from harness.catalog import BASELINE_AXIS
from harness.errors import HarnessError, suggest
from harness.report import ReportSpec



def names(report: ReportSpec) -> list[str]:
    """Every item a caption names: tables, figures, the reference and protocols tables, and the claims."""
    found = [t.name for t in report.tables] + [f.name for f in report.figures]
    found += ["reference"] * (report.reference is not None) + ["protocols"] * (report.protocols is not None)
    return found + [c.name for c in report.claims]


def _rows(frame: pd.DataFrame, metrics: Iterable[str], where: dict, axes: Iterable[str | None]) -> set[str]:
    """Run_ids with any of `metrics`, matching `where` (a run without one of its axes is kept, as in tables),
    carrying every axis of `axes` (a trained cell) or being a baseline (a row of no learning beside it)."""
    data = aggregate.restrict(frame, list(metrics), where)
    for axis in axes:
        if axis and axis not in ("epoch", "metric"):
            carries = data[axis].notna() if axis in data else pd.Series(False, index=data.index)
            baseline = data[BASELINE_AXIS].notna() if BASELINE_AXIS in data else pd.Series(False, index=data.index)
            data = data[carries | baseline]
    return set(data["run_id"])


def runs_behind(report: ReportSpec, item: str, frame: pd.DataFrame, profile: str,
                order: dict | None = None) -> set[str]:
    """The run_ids an item is drawn from (`frame`: every record of the study, baselines included). A selected
    grid counts whole: the choice of its best cell reads every cell."""
    from harness import claims
    from harness.report import where_for

    if frame.empty:
        return set()
    for spec in [*report.tables, *report.figures]:
        if spec.name == item:
            metrics = list(getattr(spec, "metrics", None) or [spec.metric])
            if spec.select is not None:
                metrics.append(spec.select.by)
            epoch = getattr(spec, "epoch", "all")
            if epoch.startswith("best:"):
                metrics.append(epoch.removeprefix("best:"))
            axes = [getattr(spec, a, None) for a in ("rows", "columns", "x", "y", "hue")]
            return _rows(frame, metrics, spec.where, axes)
    if item == "reference" and report.reference is not None:
        ref = report.reference
        metrics = [ref.metric, *(c.ours for c in ref.values)]
        return _rows(frame[frame[BASELINE_AXIS].isna()] if BASELINE_AXIS in frame else frame, metrics,
                     where_for(ref, profile), [ref.axis])
    if item == "protocols" and report.protocols is not None:
        found: set[str] = set()
        for claim in report.protocols.claims:
            for cell in (claim.faithful, claim.corrected):
                runs = aggregate.strictly(frame, where_for(cell, profile))
                found |= set(aggregate.restrict(runs, [cell.metric or claim.metric])["run_id"])
        return found
    for claim in report.claims:
        if claim.name == item:
            return set(claims.compute(claim, frame, profile, order).runs)
    raise HarnessError(f"no table, figure or claim '{item}' in this study{suggest(item, names(report))}; "
                       f"items: {', '.join(names(report))}")
