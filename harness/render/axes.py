"""Axis labels as the paper shows them: their text, their order (as the matrix declares it), a chosen cell in words."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

from harness.aggregate import Choice, label_text  # noqa: F401 (label_text: render's modules read it here)
from harness.catalog import metric_name  # noqa: F401 (render's modules read it here)
from harness import units


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


def figure_label(label: Any) -> str:
    """An axis label in a figure, which has no code font: an identifier's underscores as spaces (n_x_k -> n x k)."""
    return label_text(label).replace("_", " ")


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
    return f"{cell(choice.cell)} ({metric_name(choice.by)} {units.fixed(choice.score)}{tie})"


def selection_words(choices: Sequence[tuple[Any, Choice]], names: Mapping[str, str]) -> str | None:
    """The cells aggregate.select chose, for a caption: one cell in words, or 'label: cell; ...' per label of its
    `per` axis (None when nothing was chosen)."""
    words = [chosen_words(choice, names) if label is None else f"{label_text(label)}: {chosen_words(choice, names)}"
             for label, choice in choices]
    return "; ".join(words) or None
