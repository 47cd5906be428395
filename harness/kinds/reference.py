"""The reference kind (`report.reference`): the original's reported numbers beside ours in its setting, read from
the CSV next to the study file; verified on its runs' cells (a table drawn from two sources has no interval of its
own), when asked for by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from harness.catalog import BASELINE_AXIS
from harness.errors import ConfigError
from harness.kinds.shared import Checker, each, where_for
from harness.schema import Strict

if TYPE_CHECKING:  # the behaviour's types, read at render and verify time (imported inside the functions)
    from harness.render.compare import ItemCheck, Rerun

NAME = "reference"
FIELD = "reference"  # its key in a study's `report:`
SECTION = "compared"


class Comparison(Strict):
    theirs: str | None  # a CSV column; null for a column of ours they have no counterpart for
    ours: str  # our metric
    label: str  # the column header


class ReferenceSpec(Strict):
    """Numbers the original authors reported, shown beside ours."""

    file: str  # relative to experiments/
    source: str
    metric: str  # our metric they correspond to
    value_column: str | None = None  # with `columns`: one metric per epoch
    axis: str  # our matrix axis that their rows correspond to
    rows: str  # CSV column holding their row labels
    columns: str | None = None  # CSV column holding their epochs; or, without it, `values` at the last epoch
    values: list[Comparison] = []  # several metrics side by side, theirs vs ours, at the last epoch
    row_map: dict[str, Any] = {}  # their row names -> our axis labels
    where: dict[str, Any] = {}  # axis -> label (or list of labels): our runs in their setting (their m and s)
    where_in: dict[str, dict[str, Any]] = {}  # profile -> its own `where`, where its grid differs
    their_where: dict[str, Any] = {}  # CSV column -> value: their rows in the setting compared
    percent_in_file: bool = True
    setting: str  # their setting, in a few words, for the caption
    dataset: str  # their dataset, by our name: the caption warns when ours differs

    @model_validator(mode="after")
    def _shape(self) -> ReferenceSpec:
        if (self.columns is None) == (not self.values) or (self.columns is not None) != (self.value_column is not None):
            raise ConfigError("report.reference: give either `columns` and `value_column` (one metric per epoch) "
                              "or `values` (several metrics at the last epoch)")
        return self


FIELD_TYPE, FIELD_DEFAULT = ReferenceSpec | None, None  # how ReportSpec holds this kind's items


def check(ref: ReferenceSpec | None, checker: Checker) -> None:
    if ref is None:
        return
    anywhere = tuple(checker.anywhere)
    checker.axis("report.reference.axis", ref.axis, anywhere)
    for axis in [*ref.where, *(a for w in ref.where_in.values() for a in w)]:
        checker.axis("report.reference.where", axis, anywhere)
    for metric in [ref.metric] + [c.ours for c in ref.values]:
        checker.metric("report.reference", metric)
    if not (checker.path.parent / ref.file).exists():
        raise ConfigError(f"{checker.path}: report.reference.file: {checker.path.parent / ref.file} not found")


def stem(spec: ReferenceSpec) -> str:
    return NAME


def write_one(chapter: Any, ref: ReferenceSpec, facts: dict[str, Any]) -> list[str]:
    import pandas as pd

    from harness.render import tables
    from harness.render.axes import axis_name

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


write = each(write_one)


def runs_behind(spec: ReferenceSpec, frame: Any, profile: str, order: Any) -> set[str]:
    from harness.render.compare import rows_behind

    metrics = [spec.metric, *(c.ours for c in spec.values)]
    return rows_behind(frame[frame[BASELINE_AXIS].isna()] if BASELINE_AXIS in frame else frame, metrics,
                       where_for(spec, profile), [spec.axis])


def verify(spec: ReferenceSpec, rerun: Rerun) -> ItemCheck | None:
    from harness.render.compare import check_runs

    if rerun.wanted is None or NAME not in rerun.wanted:
        return None
    shown = [spec.metric] if not spec.values else [c.ours for c in spec.values]  # the metrics its columns show
    return check_runs(f"{rerun.study}/{NAME}", NAME, rerun, set(rerun.reruns), shown)
