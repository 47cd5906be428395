"""What the report kinds share: the `select` of a grid cell, epoch rules, a cell's `where` for a profile, and the
checks every kind runs against the study's axes and the metric names when a study file is read."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from harness import catalog
from harness.catalog import BASELINE_AXIS, BASELINE_LABELS
from harness.errors import ConfigError, suggest
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


def epoch_rule(rule: str, extra: tuple[str, ...] = ()) -> str:
    if rule not in ("all", "last", *extra) and not (rule.startswith("best:") and len(rule) > len("best:")):
        raise ValueError(f"epoch: '{rule}': one of {', '.join(('all', 'last', *extra))}, best:<metric> "
                         f"(e.g. best:val_recall_at_1)")
    return rule


def where_for(item: Any, profile: str,
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


def each(write_one: Any) -> Any:
    """A kind's `write` (chapter, its items, facts) from a function that writes one item's files."""
    def write(chapter: Any, specs: Sequence[Any], facts: dict[str, Any]) -> list[str]:
        return [name for spec in specs for name in write_one(chapter, spec, facts)]

    return write


RANKED = ("first", "last")  # {order: first|last}: a label named by its place in the profile's declared order


@dataclass(frozen=True)
class Checker:
    """The checks a kind runs on its items at load: an axis of this profile (or of any profile, where `anywhere`
    is passed), a metric a record can hold, a label of a row axis or a baseline, a claim's or protocol's cell."""

    path: Path
    order: Mapping[str, list[Any]]  # this profile's axes and their labels
    anywhere: frozenset[str]  # the axes of every profile (a `where` may name one only some profiles have)

    @property
    def axes(self) -> set[str]:
        return set(self.order) | {"epoch"}

    def axis(self, where: str, value: str | None, extra: Sequence[str] = ()) -> None:
        axes = self.axes
        if value is not None and value not in axes and value not in extra:
            raise ConfigError(f"{self.path}: {where}: unknown axis '{value}'{suggest(value, axes)}; "
                              f"axes: {', '.join(sorted(axes))}")

    @functools.cached_property
    def known_metrics(self) -> list[str]:  # built once per study file checked, not once per metric named
        return catalog.result_names()

    def metric(self, where: str, metric: str) -> None:
        known = self.known_metrics
        if metric not in known:
            raise ConfigError(f"{self.path}: {where}: unknown metric '{metric}'{suggest(metric, known)}")

    def row_label(self, where: str, label: Any, rows: str) -> None:
        # A baseline label counts even where this profile declares no baselines: such a table then has no marks.
        labels = [*self.order[rows], *self.order.get(BASELINE_AXIS, []), *BASELINE_LABELS]
        if label not in labels:
            known = list(dict.fromkeys(str(v) for v in labels))
            raise ConfigError(f"{self.path}: {where}: '{label}' is neither a label of the row axis '{rows}' nor a "
                              f"baseline{suggest(str(label), known)}; labels: {', '.join(known)}")

    def cell(self, where: str, cell: Any, ranked: bool = False) -> None:
        """A protocol's or a claim's cell: the axes of its `where` (any profile's), metric, epoch rule, select;
        `ranked`: its `where` may name a label by place ({order: first|last})."""
        anywhere = tuple(self.anywhere)
        for axis in [*cell.where, *(a for w in cell.where_in.values() for a in w)]:
            self.axis(f"{where}.where", axis, (*anywhere, BASELINE_AXIS))
        for axis, wanted in [*cell.where.items(), *(i for w in cell.where_in.values() for i in w.items())]:
            if not isinstance(wanted, Mapping):
                continue
            if not ranked or set(wanted) != {"order"} or wanted["order"] not in RANKED:
                raise ConfigError(f"{self.path}: {where}.where.{axis}: {dict(wanted)}: a label, a list of labels, "
                                  "null or (in a claim's cell) {order: first} / {order: last}")
        if cell.metric is not None:
            self.metric(f"{where}.metric", cell.metric)
        if isinstance(cell.epoch, str) and cell.epoch.startswith("best:"):
            self.metric(f"{where}.epoch", cell.epoch.removeprefix("best:"))
        if cell.select is not None:
            for axis in cell.select.axes:
                self.axis(f"{where}.select.axes", axis, anywhere)
            self.metric(f"{where}.select.by", cell.select.by)
            if cell.select.per is not None:
                self.axis(f"{where}.select.per", cell.select.per)

    def grid_item(self, kind: str, i: int, item: Any) -> None:
        """A table or figure: where it places axes, its `where`, metrics, `select` and epoch rule."""
        anywhere = tuple(self.anywhere)
        for attr, axis in item.placed_axes().items():
            # An axis of another profile is fine: this profile's render leaves that table out.
            self.axis(f"report.{kind}[{i}].{attr}", axis, (*anywhere, *("metric",) * (attr == "hue")))
        for axis in item.where:
            self.axis(f"report.{kind}[{i}].where", axis, anywhere)
        for metric in item.shown_metrics():
            self.metric(f"report.{kind}[{i}]", metric)
        select = item.select
        if select is not None:
            for axis in select.axes:  # with `per`, a method's grid may be another profile's
                self.axis(f"report.{kind}[{i}].select.axes", axis, anywhere if select.per else ())
            if select.per is not None:
                self.axis(f"report.{kind}[{i}].select.per", select.per)
            self.metric(f"report.{kind}[{i}].select.by", select.by)
        if item.epoch.startswith("best:"):
            self.metric(f"report.{kind}[{i}].epoch", item.epoch.removeprefix("best:"))
