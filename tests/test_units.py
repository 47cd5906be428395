"""units: one scale and one printed precision for every result number, and the smallest change each print shows."""

from __future__ import annotations

from harness import units
from harness.render import tables


def test_fixed_scales_and_prints_at_the_thesis_precision():
    assert units.fixed(0.81712) == "81.71" and units.fixed(0.0123, sign=True) == "+1.23"
    assert units.fixed(-0.5, 1.0, decimals=1) == "-0.5"


def test_the_step_verify_allows_is_what_the_printed_cell_can_show():
    # Two numbers that differ by less than the step print the same cell; by more than it, another one.
    step = units.printed_step() / units.PERCENT
    base = 0.8123
    assert tables.cell_text(base, float("nan"), 1, units.PERCENT) == tables.cell_text(base + step / 3, 0, 1,
                                                                                        units.PERCENT)
    assert tables.cell_text(base, 0, 1, units.PERCENT) != tables.cell_text(base + 2 * step, 0, 1, units.PERCENT)
    assert units.printed_step(units.HEATMAP_DECIMALS) == 10 * units.printed_step()
