"""Axis labels as the paper shows them: their text, their order (as the matrix declares it), a chosen cell in words."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

from harness.aggregate import Choice


def label_text(value: Any) -> str:
    """An axis label as the YAML wrote it: pandas turns integer labels of a column with gaps into floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):  # a `where` that accepts several labels
        return " or ".join(label_text(v) for v in value)
    return str(value)


def natural_key(label: Any) -> tuple[Any, ...]:
    """Sort key that puts "9-91" before "10-90" (digit runs compare as numbers) and numbers before text."""
    if isinstance(label, Real) and not isinstance(label, bool):
        return (0, float(label))
    parts = re.split(r"(\d+)", label_text(label))
    return (1, tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts if part))


def ordered(values: Sequence[Any], declared: Sequence[Any] | None) -> list[Any]:
    """The distinct `values` in the matrix's declared order; labels it does not declare (epochs, the original's
    rows) follow in natural order."""
    present = list(dict.fromkeys(values))
    declared = list(declared or [])
    return [v for v in declared if v in present] + sorted((v for v in present if v not in declared), key=natural_key)


def axis_name(axis: str, names: Mapping[str, str]) -> str:
    """How tables and figures name an axis (report.axis_labels), else its own name."""
    return names.get(axis, axis)


def chosen_words(choice: Choice, names: Mapping[str, str]) -> str:
    """'margin m = 0.4, scale s = 16 (val_classification_accuracy 71.23)': the chosen cell, for a caption; a tie
    adds '; tied with margin m = 0.1, scale s = 2; ties broken by declared order' inside the brackets."""

    def cell(labels: Sequence[Any]) -> str:
        return ", ".join(f"{axis_name(a, names)} = {label_text(v)}" for a, v in zip(choice.axes, labels))

    tie = ""
    if choice.tied:
        tie = f"; tied with {' and '.join(cell(other) for other in choice.tied)}; ties broken by declared order"
    return f"{cell(choice.cell)} ({choice.by} {choice.score * 100:.2f}{tie})"
