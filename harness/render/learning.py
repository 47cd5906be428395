"""Does learning show? Every trained cell of every table set against what no learning gets on the same split and
metric (the raw input and the untrained network), each by the paired rule the table marks use: the conclusion
states this count and lists every exception, rather than saying in words that learning shows.

Each comparison is one unadjusted test (exploratory, as the marks are); a cell counts as learned when its paired
95 % interval lies above every baseline it has a counterpart in. Every metric the tables show is one where higher
is better."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import aggregate
from harness.errors import HarnessError
from harness.render import baselines
from harness.render.axes import label_text

SIDES = {1: "above", 0: "not distinguishable from", -1: "below"}


@dataclass(frozen=True)
class CellVerdict:
    study: str
    table: str
    row: Any
    column: Any
    against: dict[str, int]  # baseline label -> sign of the paired difference (+1 above, 0 undecided, -1 below)

    @property
    def learned(self) -> bool:
        return bool(self.against) and all(sign == 1 for sign in self.against.values())

    def words(self) -> str:
        said = "; ".join(f"{SIDES[sign]} {baselines.name(label)}" for label, sign in self.against.items())
        return f"{self.study}/{self.table}: {label_text(self.row)}, {label_text(self.column)}: {said}"

    def tex(self) -> str:
        """words() as LaTeX: the table's name as its caption prints it and identifier labels in code font."""
        from harness.render.latex import label_tex, latex_escape

        said = "; ".join(f"{SIDES[sign]} {baselines.name(label)}" for label, sign in self.against.items())
        return (rf"\nolinkurl{{{self.study}/{self.table}}}: {label_tex(self.row)}, {label_tex(self.column)}: "
                f"{latex_escape(said)}")


def study_cells(data: Any) -> list[CellVerdict]:  # noqa: ANN401 (render.chapter.StudyData)
    """Every trained cell of a study's tables against each baseline it has a counterpart in."""
    from harness.render import tables
    from harness.render.facts import failed_axes

    study = data.study
    trained, baseline_runs = baselines.split_records(data.records)
    frame, base_frame = aggregate.long_frame(trained), aggregate.long_frame(baseline_runs)
    present = set(frame.columns) | {"metric", "epoch"}
    found = []
    for spec in study.spec.report.tables:
        if {spec.rows, spec.columns} - present:
            continue  # an axis of another profile: the chapter omits this table
        try:
            grid = tables.cell_values(frame, spec, study.axes, failed_axes(data.records),
                                      study.spec.report.axis_labels, base_frame)
        except HarnessError:
            continue
        labels = list(dict.fromkeys(key.label for key in [*grid.base.rows, *grid.base.columns]))
        for row in grid.rows:
            for column in grid.columns:
                if (row, column) not in grid.values:
                    continue  # a failed cell: no value to compare
                against = {}
                for label in labels:
                    ref = tables.reference_key(baselines.Baseline(label), row, column, grid.base)
                    if ref is not None and ref in grid.values:
                        against[label] = aggregate.paired_difference(grid.values[(row, column)].to_dict(),
                                                                     grid.values[ref].to_dict()).sign
                if against:
                    found.append(CellVerdict(study.name, spec.name, row, column, against))
    return found


def summary(datas: list[Any]) -> dict[str, Any]:
    """The count of learned cells over every study's tables, and the exceptions in words."""
    cells = [cell for data in datas for cell in study_cells(data)]
    exceptions = [cell for cell in cells if not cell.learned]
    return {"cells": len(cells), "learned": len(cells) - len(exceptions),
            "tables": len({(c.study, c.table) for c in cells}), "exceptions": [c.words() for c in exceptions],
            "exceptions_tex": [c.tex() for c in exceptions]}
