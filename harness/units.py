"""How result numbers are shown: metrics are stored as fractions (0-1, raw floats in the records) and read in
percent at two decimals wherever a reader meets one (tables, figures, claims, `harness verify`'s report). Each of
these facts is defined here once."""

from __future__ import annotations

PERCENT = 100.0  # the scale from a stored fraction to what is printed
DECIMALS = 2  # decimals of every printed cell, difference and claim number
HEATMAP_DECIMALS = 1  # a heatmap's annotations: one decimal fits a grid square


def fixed(value: float, scale: float = PERCENT, *, sign: bool = False, decimals: int = DECIMALS) -> str:
    """`value` scaled and printed at the thesis's precision: fixed(0.81712) == '81.71'; sign=True: '+81.71'."""
    return f"{value * scale:{'+' if sign else ''}.{decimals}f}"


def printed_step(decimals: int = DECIMALS) -> float:
    """The smallest difference a number printed with `decimals` decimals can show (0.01 for two)."""
    return 10.0 ** -decimals
