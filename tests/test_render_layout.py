"""The layout rule of the PDF build: a line wider than the text by more than 1 pt fails the build, one line
naming where; narrower overflows (TeX's rounding) pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.render import pdf
from tests.conftest import NEEDS_LATEX, PDFTOTEXT


LOG = """This is pdfTeX
(./main.tex (./generated/chapters.tex) (./generated/cub_cars/findings.tex
Overfull \\hbox ({width}pt too wide) in paragraph at lines 41--42
\\T1/lmr/m/n/10.95 the records of cub_cars/test_epoch_choice_inflates
 []
"""


def test_a_line_over_one_point_into_the_margin_fails_naming_it(tmp_path: Path):
    log = tmp_path / "main.log"
    log.write_text(LOG.format(width="45.8081") + LOG.format(width="3.2"))
    with pytest.raises(HarnessError, match=r"45\.8 pt into the margin in generated/cub_cars/findings\.tex \(study "
                                           r"cub_cars, written by `harness render`.*\), in paragraph at lines 41--42: "
                                           r".*test_epoch_choice_inflates.*\(and 1 more\)"):
        pdf.check_layout(log)


def test_a_table_longer_than_the_page_even_sideways_fails_naming_its_file(tmp_path: Path):
    log = tmp_path / "main.log"
    log.write_text("(./main.tex (./generated/supcon/table_knn.tex\nharness: a table printed below 8 pt on page 31\n")
    with pytest.raises(HarnessError, match=r"a table printed below 8 pt on page 31, in generated/supcon/table_knn\.tex "
                                           r"\(study supcon, .*split the table"):
        pdf.check_layout(log)


def test_rounding_overflows_pass(tmp_path: Path):
    log = tmp_path / "main.log"
    log.write_text(LOG.format(width="0.99998"))
    pdf.check_layout(log)


UNDEFINED = "LaTeX Warning: Reference `{label}' on page 12 undefined on input line 40.\n"


def test_a_pdf_that_would_print_question_marks_is_not_built(tmp_path: Path):
    (tmp_path / "generated" / "arcface").mkdir(parents=True)
    log = tmp_path / "main.log"
    log.write_text(UNDEFINED.format(label="tab:arcface:heads") + UNDEFINED.format(label="chap:limitations"))
    with pytest.raises(HarnessError, match=r"'chap:limitations' \(page 12\) is undefined .* print '\?\?' "
                                           r"\(2 in all\)"):
        pdf.check_references(log, tmp_path)


def test_a_reference_into_a_study_that_was_not_rendered_is_expected(tmp_path: Path):
    log = tmp_path / "main.log"  # only loss_epochs was rendered: its chapter says the other was not
    (tmp_path / "generated" / "loss_epochs").mkdir(parents=True)
    log.write_text(UNDEFINED.format(label="tab:arcface:heads"))
    pdf.check_references(log, tmp_path)


@pytest.mark.slow
@NEEDS_LATEX
@pytest.mark.skipif(not PDFTOTEXT, reason="needs pdftotext (apt-get install poppler-utils; CI installs it)")
def test_a_file_skipped_by_the_last_build_is_read_by_the_next(tmp_path: Path, run_cli):
    """latexmk only tracks the files a build read: one that \\IfFileExists skipped (a study rendered since)
    must still reach the PDF, which is therefore always rebuilt."""
    results, paper = tmp_path / "results", tmp_path / "paper"
    code, out, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 0, out + err
    assert run_cli("render", "--profile", "smoke", "--results", results, "--paper", paper,
                   "--studies", "arcface")[0] == 0  # no records: its chapter says how to make them
    before = pdf_text(paper)
    assert "loss_epochs/knn_accuracy" not in before
    code, _, err = run_cli("render", "--profile", "smoke", "--results", results, "--paper", paper,
                           "--studies", "loss_epochs")
    assert code == 0, err
    assert "loss_epochs/knn_accuracy" in pdf_text(paper)  # its table's caption names it


def pdf_text(paper: Path) -> str:
    import subprocess

    return subprocess.run(["pdftotext", str(paper / "build" / "main.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
