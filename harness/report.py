"""The report schema of a study file (its `report:` section): tables, figures and the original's numbers, checked
against the study's axes and the metric names at load time, so a typo fails before any render."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness import catalog
from harness.catalog import BASELINE_AXIS, BASELINE_LABELS
from harness.errors import ConfigError, suggest
from harness.prose import hand_typed
from harness.schema import Strict


class SelectSpec(Strict):
    """Keep, of the cells that have all of `axes`, only the best by `by` (mean over seeds at the last epoch).

    `by` should be a validation metric (val_...): choosing on the test split would flatter the chosen cell.
    Cells without those axes (a baseline) are kept as they are. With `per` (an axis, e.g. the method), the choice
    is made separately for each of its labels, over the axes of `axes` that label's runs have: each method tuned
    over its own grid on the same validation metric, so that tuned methods are compared.
    """

    axes: list[str] = Field(min_length=1)
    by: str
    per: str | None = None


class TableSpec(Strict):
    name: str
    metric: str
    rows: str  # a matrix axis
    columns: str  # "epoch" or a matrix axis
    caption: str
    percent: bool = True
    # "last": only each run's last evaluated epoch (when columns is not "epoch"); "best:<metric>": the epoch at which
    # that metric peaked (best:val_... is selection on a validation split; best: a test metric, the test-set choice
    # some originals made)
    epoch: str = "all"
    where: dict[str, Any] = {}  # axis -> label: only runs with these labels
    select: SelectSpec | None = None  # only the best cell of a grid (and runs outside the grid)
    # A reference row: a label of the row axis, or a baseline (raw_input, untrained). Each other cell is marked
    # where the 95% t-interval of its paired difference by seed to the reference in its column excludes 0
    # (up or down); None: bold marks a column's clear best instead.
    compare_to: str | int | float | None = None
    # Also print each cell's lowest and highest single run: what one unseeded run (as the originals ran) could
    # have reported, beside the mean and its interval.
    spread: bool = False

    @field_validator("epoch")
    @classmethod
    def _epoch(cls, rule: str) -> str:
        return _epoch_rule(rule)

    def shown_metrics(self) -> list[str]:
        return [self.metric]

    def placed_axes(self) -> dict[str, str | None]:
        """Where the item puts matrix axes (or "epoch"): its field -> the axis."""
        return {"rows": self.rows, "columns": self.columns}


class FigureSpec(Strict):
    name: str
    kind: Literal["line", "heatmap"] = "line"
    x: str  # "epoch" or a matrix axis
    hue: str | None = None  # a matrix axis, or "metric" (all metrics in one panel); line figures only
    y: str | None = None  # heatmaps: the axis of the rows
    metrics: list[str] = Field(min_length=1)  # a heatmap shows one metric at the last evaluated epoch
    where: dict[str, Any] = {}  # axis -> label: only runs with these labels
    select: SelectSpec | None = None
    caption: str

    @model_validator(mode="after")
    def _kind(self) -> FigureSpec:
        if self.kind == "line" and self.hue is None:
            raise ConfigError(f"report.figures '{self.name}': a line figure needs 'hue' (an axis or 'metric')")
        if self.kind == "heatmap" and (self.y is None or len(self.metrics) != 1):
            raise ConfigError(f"report.figures '{self.name}': a heatmap needs 'y' (an axis) and exactly one metric")
        return self

    @property
    def epoch(self) -> str:
        """Curves over epochs show every epoch; anything else each run's last (figures.figure_data)."""
        return "all"

    def shown_metrics(self) -> list[str]:
        return list(self.metrics)

    def placed_axes(self) -> dict[str, str | None]:
        return {"x": self.x, "hue": self.hue, "y": self.y}


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


def _epoch_rule(rule: str, extra: tuple[str, ...] = ()) -> str:
    if rule not in ("all", "last", *extra) and not (rule.startswith("best:") and len(rule) > len("best:")):
        raise ValueError(f"epoch: '{rule}': one of {', '.join(('all', 'last', *extra))}, best:<metric> "
                         f"(e.g. best:val_recall_at_1)")
    return rule


class ProtocolCell(Strict):
    """Our runs and the epoch of one protocol in a claim's row: the runs matching `where` (and the row's labels;
    a run without one of those axes is kept), narrowed by `select`, at the epoch `epoch` picks."""

    where: dict[str, Any] = {}
    # profile -> the `where` for that profile, where its grid differs (the quick arcface softmax with the same
    # optimizer as ArcFace is lr 1e-3; in the full grid, lr 0.01 with momentum 0.5)
    where_in: dict[str, dict[str, Any]] = {}
    select: SelectSpec | None = None
    metric: str | None = None  # default: the claim's metric
    # last | best:<metric> | faithful: the epoch the original-protocol cell of the same row was read at (a
    # corrected run evaluated after as many epochs as the original's call trained)
    epoch: str = "last"

    @field_validator("epoch")
    @classmethod
    def _epoch(cls, rule: str) -> str:
        return _epoch_rule(rule, ("faithful",))


class ProtocolClaim(Strict):
    """One number the original reported, and how it reads under its protocol and under ours."""

    label: str  # what it is ("R@1, last epoch")
    metric: str  # our metric
    theirs: str | None = None  # the CSV column holding their number (None: they reported none)
    faithful: ProtocolCell  # ours, run or read the original's way
    corrected: ProtocolCell  # ours, the corrected way
    note: str = ""  # for the caption: what the corrected column is, when not the same measurement


class ProtocolSpec(Strict):
    """The "original / ours with the original's protocol / ours corrected / corrected - faithful" table: one
    row per claim and label of `rows` among the faithful runs, the difference paired by seed with its 95%
    t-interval."""

    file: str  # relative to experiments/: their numbers
    source: str
    caption: str
    rows: list[str] = Field(min_length=1)  # our axes whose labels name a row
    their_rows: dict[str, str] = {}  # our axis -> the CSV column holding its label there
    row_map: dict[str, Any] = {}  # their labels -> ours
    their_where: dict[str, Any] = {}  # CSV column -> value: their rows in the setting compared
    percent_in_file: bool = True
    claims: list[ProtocolClaim] = Field(min_length=1)
    spread: bool = False  # also the lowest and highest single run of the faithful cell (the originals ran once)


Verdict = Literal["reproduced", "not reproduced", "contradicted", "not testable here"]
VERDICTS = ("reproduced", "not reproduced", "contradicted", "not testable here")
# What a sentence may refer to: {mean}, {low}, {high} of the difference in percentage points (one cell pair);
# with `per`: {min} and {max} of the per-label mean differences and {lowest}/{highest} interval ends; always {a}
# and {b} (the cells' means in percent; with `per`, their ranges) and {n} (seed pairs).
PLACEHOLDERS = ("mean", "low", "high", "min", "max", "lowest", "highest", "a", "b", "n")
# {a_<axis>} / {b_<axis>}: the labels of that axis among a cell's runs, read from the records, so that a sentence
# names the budget, split or setting each profile compares instead of typing it.
LABEL_PLACEHOLDER = re.compile(r"^([ab])_(\w+)$")


class ClaimCell(Strict):
    """Runs (a `where` as in report.protocols: strict; a cell without `baseline` in it never reads a baseline run),
    one metric, at one epoch rule (last, best:<metric>, or an evaluated epoch), optionally the best grid cell."""

    where: dict[str, Any] = {}
    where_in: dict[str, dict[str, Any]] = {}  # profile -> its own `where`
    metric: str
    epoch: str | int = "last"
    select: SelectSpec | None = None


class ClaimSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # stable: check messages and macros use it
    original: str  # the original's claim this addresses, in words
    sentence: str  # the finding, with {placeholders} for its numbers (no number typed by hand)
    a: ClaimCell | None = None
    b: ClaimCell | None = None  # the difference computed is a - b
    per: str | None = None  # one difference per label of this axis (among a's runs); the verdict needs them all
    # what the original's claim predicts of a against b; "same": that they do not differ (reproduced while the
    # interval contains 0, contradicted when it excludes it)
    expect: Literal["higher", "lower", "same"] = "higher"
    verdict: Verdict  # what the records are expected to give; `harness check` fails when they stop giving it
    reason: str = ""  # why, for "not testable here"

    @model_validator(mode="after")
    def _shape(self) -> ClaimSpec:
        if self.verdict == "not testable here":
            if not self.reason:
                raise ConfigError(f"report.claims '{self.name}': a claim not testable here needs a `reason`")
            if self.a is not None or self.b is not None:
                raise ConfigError(f"report.claims '{self.name}': a claim not testable here computes nothing "
                                  "(no `a`, `b`)")
        elif self.a is None or self.b is None:
            raise ConfigError(f"report.claims '{self.name}': give the cells `a` and `b` (the difference a - b)")
        for field in re.findall(r"\{(\w*)\}", self.sentence):
            if field not in PLACEHOLDERS and not LABEL_PLACEHOLDER.match(field):
                raise ConfigError(f"report.claims '{self.name}': sentence placeholder {{{field}}} is not one of "
                                  f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}, or {{a_<axis>}} / "
                                  "{b_<axis>} (a cell's labels on that axis)")
        if hand_typed(self.sentence):
            raise ConfigError(f"report.claims '{self.name}': the sentence types a result number "
                              f"({hand_typed(self.sentence)[0]!r}); use a placeholder")
        return self


class ReportSpec(Strict):
    axis_labels: dict[str, str] = {}  # axis -> how tables and figures name it ("m" -> "margin m")
    tables: list[TableSpec] = []
    figures: list[FigureSpec] = []
    reference: ReferenceSpec | None = None
    protocols: ProtocolSpec | None = None
    claims: list[ClaimSpec] = []  # the chapter's findings, computed from records (harness.claims)


def where_for(item: ReferenceSpec | ProtocolCell | ClaimCell, profile: str,
              order: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """An item's `where` for a profile: its own entry in `where_in`, else `where`. A claim cell's value
    {order: first} or {order: last} is the first or last label of that axis in the profile's declared order
    (`order`): "the shortest budget" names a different label in each profile."""
    where = dict(item.where_in.get(profile, item.where))
    for axis, wanted in where.items():
        if isinstance(wanted, Mapping):
            labels = list((order or {}).get(axis) or [])
            if not labels:
                raise ConfigError(f"where {axis}: {dict(wanted)}: the profile {profile} declares no labels on "
                                  f"'{axis}'")
            where[axis] = labels[0] if wanted["order"] == "first" else labels[-1]
    return where


RANKED = ("first", "last")  # {order: first|last}: a label named by its place in the profile's declared order


def check_report(path: Path, report: ReportSpec, order: Mapping[str, list[Any]], anywhere: set[str]) -> None:
    """Every axis and metric a table, figure or reference names must exist (a typo fails at load, not at render).

    `order` holds this profile's axes; `anywhere` the axes of every profile (a `where` may name an axis that only
    some profiles have: runs without it are kept).
    """
    axes = set(order) | {"epoch"}
    anywhere = anywhere | axes
    known_metrics = catalog.result_names()

    def check_axis(where: str, value: str | None, extra: Sequence[str] = ()) -> None:
        if value is not None and value not in axes and value not in extra:
            raise ConfigError(f"{path}: {where}: unknown axis '{value}'{suggest(value, axes)}; "
                              f"axes: {', '.join(sorted(axes))}")

    def check_metric(where: str, metric: str) -> None:
        if metric not in known_metrics:
            raise ConfigError(f"{path}: {where}: unknown metric '{metric}'{suggest(metric, known_metrics)}")

    def check_row_label(where: str, label: Any, rows: str) -> None:
        # A baseline label counts even where this profile declares no baselines: such a table then has no marks.
        labels = [*order[rows], *order.get(BASELINE_AXIS, []), *BASELINE_LABELS]
        if label not in labels:
            known = list(dict.fromkeys(str(v) for v in labels))
            raise ConfigError(f"{path}: {where}: '{label}' is neither a label of the row axis '{rows}' nor a "
                              f"baseline{suggest(str(label), known)}; labels: {', '.join(known)}")

    def check_cell(where: str, cell: ProtocolCell | ClaimCell) -> None:
        """A protocol's or a claim's cell: the axes of its `where` (any profile's), metric, epoch rule, select."""
        for axis in [*cell.where, *(a for w in cell.where_in.values() for a in w)]:
            check_axis(f"{where}.where", axis, (*anywhere, BASELINE_AXIS))
        for axis, wanted in [*cell.where.items(), *(i for w in cell.where_in.values() for i in w.items())]:
            if not isinstance(wanted, Mapping):
                continue
            if not isinstance(cell, ClaimCell) or set(wanted) != {"order"} or wanted["order"] not in RANKED:
                raise ConfigError(f"{path}: {where}.where.{axis}: {dict(wanted)}: a label, a list of labels, null "
                                  "or (in a claim's cell) {order: first} / {order: last}")
        if cell.metric is not None:
            check_metric(f"{where}.metric", cell.metric)
        if isinstance(cell.epoch, str) and cell.epoch.startswith("best:"):
            check_metric(f"{where}.epoch", cell.epoch.removeprefix("best:"))
        if cell.select is not None:
            for axis in cell.select.axes:
                check_axis(f"{where}.select.axes", axis, tuple(anywhere))
            check_metric(f"{where}.select.by", cell.select.by)
            if cell.select.per is not None:
                check_axis(f"{where}.select.per", cell.select.per)

    for kind, items in (("tables", report.tables), ("figures", report.figures)):
        for i, item in enumerate(items):
            for attr, axis in item.placed_axes().items():
                # An axis of another profile is fine: this profile's render leaves that table out.
                check_axis(f"report.{kind}[{i}].{attr}", axis, (*anywhere, *("metric",) * (attr == "hue")))
            for axis in item.where:
                check_axis(f"report.{kind}[{i}].where", axis, tuple(anywhere))
            for metric in item.shown_metrics():
                check_metric(f"report.{kind}[{i}]", metric)
            if isinstance(item, TableSpec) and item.compare_to is not None and item.rows in order:
                check_row_label(f"report.{kind}[{i}].compare_to", item.compare_to, item.rows)
            select = item.select
            if select is not None:
                for axis in select.axes:  # with `per`, a method's grid may be another profile's
                    check_axis(f"report.{kind}[{i}].select.axes", axis, tuple(anywhere) if select.per else ())
                if select.per is not None:
                    check_axis(f"report.{kind}[{i}].select.per", select.per)
                check_metric(f"report.{kind}[{i}].select.by", select.by)
            rule = item.epoch
            if rule.startswith("best:"):
                check_metric(f"report.{kind}[{i}].epoch", rule.removeprefix("best:"))
    for axis in report.axis_labels:
        check_axis("report.axis_labels", axis, tuple(anywhere))
    ref = report.reference
    if ref is not None:
        check_axis("report.reference.axis", ref.axis, tuple(anywhere))
        for axis in [*ref.where, *(a for w in ref.where_in.values() for a in w)]:
            check_axis("report.reference.where", axis, tuple(anywhere))
        for metric in [ref.metric] + [c.ours for c in ref.values]:
            check_metric("report.reference", metric)
        if not (path.parent / ref.file).exists():
            raise ConfigError(f"{path}: report.reference.file: {path.parent / ref.file} not found")
    protocols = report.protocols
    if protocols is not None:
        for axis in [*protocols.rows, *protocols.their_rows]:
            check_axis("report.protocols.rows", axis, tuple(anywhere))
        for i, claim in enumerate(protocols.claims):
            where = f"report.protocols.claims[{i}]"
            check_metric(where, claim.metric)
            for side in ("faithful", "corrected"):
                check_cell(f"{where}.{side}", getattr(claim, side))
            if claim.faithful.epoch == "faithful":
                raise ConfigError(f"{path}: {where}.faithful.epoch: 'faithful' is for the corrected cell only")
        if not (path.parent / protocols.file).exists():
            raise ConfigError(f"{path}: report.protocols.file: {path.parent / protocols.file} not found")
    names = [claim.name for claim in report.claims]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: report.claims: two claims share a name; names: {', '.join(names)}")
    for claim in report.claims:
        where = f"report.claims '{claim.name}'"
        if claim.per is not None:
            check_axis(f"{where}.per", claim.per, tuple(anywhere))
        for field in re.findall(r"\{(\w*)\}", claim.sentence):
            if found := LABEL_PLACEHOLDER.match(field):
                check_axis(f"{where}.sentence {{{field}}}", found.group(2), tuple(anywhere))
        for side in ("a", "b"):
            cell = getattr(claim, side)
            if cell is None:
                continue
            if isinstance(cell.epoch, str) and cell.epoch != "last" and not cell.epoch.startswith("best:"):
                raise ConfigError(f"{path}: {where}.{side}.epoch: '{cell.epoch}': last, best:<metric> or an "
                                  "evaluated epoch (a number)")
            check_cell(f"{where}.{side}", cell)
