"""Report kinds as plug-ins. Each module here is one kind of item a study's `report:` declares (table, figure,
reference, protocols, claim) behind one small interface, and every stage that handles items goes through it:

    NAME                                  the kind, as `harness verify` reports it
    SECTION                               where a generated chapter inputs it: results, compared or findings
    inputs(report) -> [file stem]          the files a chapter inputs for its items
    specs(report) -> [spec]               the items of this kind the report declares, in order
    item_name(spec) -> str                its stable name (captions print study/<name>)
    write(chapter, facts) -> [file]       its files in the chapter (render.chapter.Chapter: frames, templates)
    runs_behind(spec, frame, profile, order) -> {run_id}    the runs it is drawn from (verify study/item)
    verify(spec, rerun) -> ItemCheck|None  it, recorded against rerun (kinds.base.Rerun); None: not compared

Adding a kind: its schema in harness/report.py (the spec stage validates study files before anything renders),
a module here with the functions above, its template under paper/templates/, and its entry in KINDS.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from harness.render.kinds import claim, figure, protocols, reference, table

# The order in which a chapter writes them and verify reports them.
KINDS: tuple[ModuleType, ...] = (table, figure, reference, protocols, claim)


def items(report: Any) -> list[tuple[ModuleType, Any]]:
    """Every (kind, spec) a report declares, in KINDS order."""
    return [(kind, spec) for kind in KINDS for spec in kind.specs(report)]


def inputs(report: Any, section: str) -> list[str]:
    """The files of every kind placed in `section` of a generated chapter, in KINDS order."""
    return [stem for kind in KINDS if kind.SECTION == section for stem in kind.inputs(report)]
