"""Which recorded runs stand behind one table or figure of a chapter (named `study/item` in its caption), so that a
reviewer can rerun exactly those: `harness verify study/item`, `make table T=study/item`."""

from __future__ import annotations

import pandas as pd

from harness.errors import HarnessError, suggest
from harness import kinds
from harness.report import ReportSpec


def names(report: ReportSpec) -> list[str]:
    """Every item a caption names: tables, figures, the reference and protocols tables, and the claims."""
    return [kinds.item_name(kind, spec) for kind, spec in kinds.items(report)]


def runs_behind(report: ReportSpec, item: str, frame: pd.DataFrame, profile: str,
                order: dict | None = None) -> set[str]:
    """The run_ids an item is drawn from (`frame`: every record of the study, baselines included). A selected
    grid counts whole: the choice of its best cell reads every cell."""
    for kind, spec in kinds.items(report):
        if kinds.item_name(kind, spec) == item:
            return set() if frame.empty else kind.runs_behind(spec, frame, profile, order)
    raise HarnessError(f"no table, figure or claim '{item}' in this study{suggest(item, names(report))}; "
                       f"items: {', '.join(names(report))}")
