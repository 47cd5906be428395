"""Baseline runs: records whose axes hold the reserved axis `baseline` (raw_input: the flattened, normalised input
scored with the study's distance; untrained: the study's model at initialisation). A baseline trains nothing: it
has one evaluation, after epoch 0. Here: what readers call them, and which of them a table, figure or caption shows.

The one place where render names and describes them (the axis and its labels are fixed in harness.catalog, which
checks a table's `compare_to`); tables and figures take the trained runs and the baselines as two frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness import aggregate
from harness.render.axes import label_text, ordered
from harness.catalog import BASELINE_AXIS, BASELINE_LABELS
from harness import units

if TYPE_CHECKING:
    from harness.store import RunRecord

AXIS = BASELINE_AXIS  # the reserved matrix axis
LABELS = BASELINE_LABELS  # raw_input, untrained: the labels every study may put on it
NAMES = dict(zip(LABELS, ("raw input", "untrained network")))  # label -> what readers see


def name(label: Any) -> str:
    """'raw input', 'untrained network'; a study's own baseline label as it is."""
    return NAMES.get(label, label_text(label))


@dataclass(frozen=True)
class Baseline:
    """A baseline row (or column) of a table: its label, and the column label it is specific to, if any."""

    label: Any
    detail: Any = None  # columns layout only: the table column this baseline column belongs to

    def __str__(self) -> str:
        return name(self.label) + ("" if self.detail is None else f" ({label_text(self.detail)})")


def is_baseline(record: RunRecord) -> bool:
    return AXIS in record.axes


def split_records(records: Iterable[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """(trained runs, baseline runs), each in the given order."""
    records = list(records)
    return [r for r in records if not is_baseline(r)], [r for r in records if is_baseline(r)]


def trained_only(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` without baseline rows (a frame that never had any is returned as it is)."""
    if AXIS not in frame:
        return frame
    return frame[frame[AXIS].isna()].drop(columns=AXIS)


def matching(baselines: pd.DataFrame | None, metrics: Sequence[str], where: Mapping[str, Any]) -> pd.DataFrame:
    """The baseline rows of these metrics whose runs match `where` (a run without one of its axes is kept)."""
    if baselines is None or baselines.empty or AXIS not in baselines:
        return pd.DataFrame(columns=[AXIS, "run_id", "seed", "epoch", "metric", "value"])
    return aggregate.restrict(baselines[baselines[AXIS].notna()], metrics, where)


def carries(data: pd.DataFrame, axis: str) -> bool:
    """Whether any of these baseline runs has a label on `axis`."""
    return axis in data and bool(data[axis].notna().any())


def agreeing(data: pd.DataFrame, labels: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of runs that agree with `labels` on every axis they carry (a run without an axis applies to all)."""
    keep = pd.Series(True, index=data.index)
    for axis, label in labels.items():
        if axis in data:
            keep &= data[axis].isna() | (data[axis] == label)
    return data[keep]


def ordered_labels(present: Sequence[Any], order: Mapping[str, Sequence[Any]] | None = None) -> list[Any]:
    """Distinct baseline labels in the matrix's declared order (raw input before untrained when undeclared)."""
    return ordered(list(present), (order or {}).get(AXIS) or LABELS)


def labels(data: pd.DataFrame, order: Mapping[str, Sequence[Any]]) -> list[Any]:
    """The baseline labels these rows have, in the matrix's declared order."""
    return [] if data.empty else ordered_labels(data[AXIS].tolist(), order)


def summary_words(data: pd.DataFrame, axes: Sequence[str], order: Mapping[str, Sequence[Any]],
                  names: Mapping[str, str], scale: float) -> list[str]:
    """'raw input 82.40', one per baseline (and per label of `axes` it carries): a caption's mention of them."""
    words = []
    for label in labels(data, order):
        runs = data[data[AXIS] == label]
        carried = [a for a in axes if carries(runs, a)]
        groups = [(key if isinstance(key, tuple) else (key,), group)
                  for key, group in runs.groupby(carried, dropna=False, sort=False)] if carried else [((), runs)]
        for key, group in sorted(groups, key=lambda item: aggregate.declared_rank(item[0], order, carried)):
            where = ", ".join(f"{names.get(a, a)} = {label_text(v)}" for a, v in zip(carried, key) if pd.notna(v))
            mean = aggregate.seed_values(group).mean()
            words.append(f"{name(label)}{f' ({where})' if where else ''} {units.fixed(mean, scale)}")
    return words



def table_note(rows: Sequence[Baseline], columns: Sequence[Baseline], epoch_columns: bool) -> str:
    """What a table's caption says about its baselines ('' without any)."""
    keys = [*rows, *columns]
    if not keys:
        return ""
    labels_ = list(dict.fromkeys(key.label for key in keys))
    if rows:
        # what each baseline is, the reading guide says once (main.tex, Baselines); a caption names them
        where = "Rows in italics (first): baselines that do not train, " + " and ".join(map(name, labels_))
        if epoch_columns:
            where += "; each has one value, after epoch 0, shown in every epoch column"
    else:
        where = ("Columns in italics (first): baselines that do not train, one value per row (they differ by "
                 "row), " + " and ".join(map(name, labels_)))
    return where + "."



def figure_note(labels_: Sequence[Any], words: Sequence[str] = (), metric: str = "") -> str:
    """What a figure's caption says about its baselines (`labels_`): drawn as dashed lines, or, for a heatmap,
    their values (`words`, of `metric`); '' without any."""
    if not labels_:
        return ""
    if words:
        return (f"Baselines that do not train ({' and '.join(map(name, labels_))}), {metric} in percent, mean over "
                f"seeds: "
                f"{'; '.join(words)}.")
    return f"Dashed lines: baselines that do not train, {' and '.join(map(name, labels_))}."
