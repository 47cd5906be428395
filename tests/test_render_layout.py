"""The layout rule of the PDF build: a line wider than the text by more than 1 pt fails the build, one line
naming where; narrower overflows (TeX's rounding) pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.render import pdf

LOG = """This is pdfTeX
Overfull \\hbox ({width}pt too wide) in paragraph at lines 41--42
\\T1/lmr/m/n/10.95 the records of cub_cars/test_epoch_choice_inflates
 []
"""


def test_a_line_over_one_point_into_the_margin_fails_naming_it(tmp_path: Path):
    log = tmp_path / "main.log"
    log.write_text(LOG.format(width="45.8081") + LOG.format(width="3.2"))
    with pytest.raises(HarnessError, match=r"45\.8 pt into the margin in paragraph at lines 41--42: .*"
                                           r"test_epoch_choice_inflates.*\(and 1 more\)"):
        pdf.check_layout(log)


def test_rounding_overflows_pass(tmp_path: Path):
    log = tmp_path / "main.log"
    log.write_text(LOG.format(width="0.99998"))
    pdf.check_layout(log)
