"""Report kinds as plug-ins. Each module here is one kind of item a study's `report:` declares (table, figure,
reference, protocols, claim, calibration): its schema, checked when the study file is read, and its behaviour, behind one
small interface that every stage handling items goes through:

    NAME, FIELD                            the kind, and its key in `report:`
    FIELD_TYPE, FIELD_DEFAULT              how ReportSpec holds its items: a list of named items ([]), or one
                                           optional item (None) that captions name by NAME
    SECTION                                where a generated chapter inputs it: results, compared or findings
    check(items, checker)                  its items against the study's axes and metrics, at load
    stem(spec) -> file stem                the file a chapter inputs for an item (items may share one)
    write(chapter, specs, facts) -> [file] its items' files in a chapter (harness.render.chapter.Chapter);
                                           shared.each(write_one) where each item has files of its own
    runs_behind(spec, frame, profile, order) -> {run_id}     the runs it is drawn from (verify study/item)
    verify(spec, rerun) -> ItemCheck|None  it, recorded against rerun (harness.render.compare.Rerun)

A kind's module level is light (its schema, for `harness list` and the spec stage); what it renders and compares
is imported inside those functions. Adding a kind: its module and its template under paper/templates/, and its
entry in KINDS.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import create_model

from harness.kinds import calibration, claim, figure, protocols, reference, table
from harness.kinds.shared import Checker
from harness.schema import Strict

# The order in which a study file lists them, a chapter writes them and verify reports them.
KINDS: tuple[ModuleType, ...] = (table, figure, reference, protocols, claim, calibration)

# A study's `report:` section: how tables and figures name the axes, then each kind's items.
ReportSpec = create_model(
    "ReportSpec", __base__=Strict, __module__=__name__,
    axis_labels=(dict[str, str], {}),  # axis -> how tables and figures name it ("m" -> "margin m")
    # The items (tables, figures, claims) that answer the study's `question`; `harness check` fails on none.
    answered_by=(list[str], []),
    **{kind.FIELD: (kind.FIELD_TYPE, kind.FIELD_DEFAULT) for kind in KINDS})


def specs(kind: ModuleType, report: Any) -> list[Any]:
    """The items of one kind a report declares: its list, or its one item where it has one."""
    value = getattr(report, kind.FIELD)
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def item_name(kind: ModuleType, spec: Any) -> str:
    """The name its caption prints after study/: a listed item's own name, else the kind's (reference)."""
    return spec.name if isinstance(kind.FIELD_DEFAULT, list) else kind.NAME


def items(report: Any) -> list[tuple[ModuleType, Any]]:
    """Every (kind, spec) a report declares, in KINDS order."""
    return [(kind, spec) for kind in KINDS for spec in specs(kind, report)]


def inputs(report: Any, section: str) -> list[str]:
    """The files of every kind placed in `section` of a generated chapter, in KINDS order."""
    return list(dict.fromkeys(kind.stem(spec) for kind in KINDS if kind.SECTION == section
                              for spec in specs(kind, report)))


def check_report(path: Any, report: Any, order: Any, anywhere: set[str]) -> None:
    """Every axis and metric an item names must exist (a typo fails at load, not at render). `order` holds this
    profile's axes; `anywhere` the axes of every profile (a `where` may name an axis that only some profiles have:
    runs without it are kept)."""
    checker = Checker(path, order, frozenset(anywhere | set(order) | {"epoch"}))
    for axis in report.axis_labels:
        checker.axis("report.axis_labels", axis, tuple(checker.anywhere))
    for kind in KINDS:
        kind.check(getattr(report, kind.FIELD), checker)
    known = [item_name(kind, spec) for kind, spec in items(report)]
    for name in report.answered_by:
        if name not in known:
            from harness.errors import ConfigError, suggest

            raise ConfigError(f"{path}: report.answered_by: no table, figure or claim '{name}'"
                              f"{suggest(name, known)}; items: {', '.join(known)}")
