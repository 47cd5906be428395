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


def signed(value: float, scale: float = PERCENT) -> str:
    """A signed difference at the thesis's precision, with as many more decimals (up to four more) as a value that
    is not 0 needs to show its sign: signed(-0.00004) == '-0.004', never '-0.00' beside "below zero"."""
    text = fixed(value, scale, sign=True)
    if value == 0 or text.strip("+-0.") != "":
        return text
    for decimals in range(DECIMALS + 1, DECIMALS + 4):
        finer = fixed(value, scale, sign=True, decimals=decimals)
        if finer.strip("+-0.") != "":
            return finer
    return text


def printed_step(decimals: int = DECIMALS) -> float:
    """The smallest difference a number printed with `decimals` decimals can show (0.01 for two)."""
    return 10.0 ** -decimals


def duration(seconds: float) -> str:
    """How long, for a reader: '45 s', '12.5 min', '2.3 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
