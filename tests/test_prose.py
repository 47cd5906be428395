"""What prose may not show the reader: keys and internal names outside code font (harness.prose), and the
filters that keep generated text free of them (harness.render.latex)."""

from __future__ import annotations

import pytest

from harness.prose import jargon_at, jargon_in_text, jargon_problems
from harness.render.latex import label_tex, words_tex

from tests.conftest import PDFTOTEXT


def found(tex: str) -> list[str]:
    return [word for _, word in jargon_at(tex)]


def test_snake_case_and_dotted_keys_in_prose_are_found_with_their_offsets():
    tex = "Scored by val\\_classification\\_accuracy with N = eval.options.n\\_way ways."
    assert found(tex) == ["val\\_classification\\_accuracy", "eval.options.n\\_way"]
    assert [offset for offset, _ in jargon_at(tex)] == [tex.index("val"), tex.index("eval")]


def test_code_font_references_macro_names_and_comments_are_not_prose():
    tex = ("Run \\texttt{harness run loss\\_epochs} or \\nolinkurl{T=loss_epochs/map_at_r} (Table~\\ref{tab:a_b}; "
           "\\cite{musgrave_2020}); \\claimval{one_shot}{more_seen}{a_split} points.\n"
           "\\expandafter\\def\\csname claim:x_y:mean\\endcsname{\\ensuremath{+1.00}}\n"
           "% a comment may say map\\_at\\_r\n\\IfFileExists{generated/learning.tex}{}{}\n"
           "\\texttt{nested \\textbf{key\\_name}} e.g.\\ i.e.\\ s.d.\\ Fig.~3.1 and 0.5.")
    assert found(tex) == []


def test_plain_text_of_a_figure_allows_paths_and_file_names_only():
    text = "results/<study>/ <run_id>.json main.pdf loss_epochs/map_at_r proxy_anchor eval.options.n_way e.g. 3.1"
    assert jargon_in_text(text) == ["proxy_anchor", "eval.options.n_way"]


def test_a_source_sets_files_and_repositories_in_code_font_and_leaves_words_alone():
    assert words_tex("Sorrow321/cmc_seminar_master, old_files/mnist_arcface.ipynb (cell 7)") == (
        "\\nolinkurl{Sorrow321/cmc_seminar_master}, \\nolinkurl{old_files/mnist_arcface.ipynb} (cell 7)")
    assert words_tex("training_results.csv: NCA after 1/N of 20-80 epochs, e.g. 0.5.") == (
        "\\nolinkurl{training_results.csv}: NCA after 1/N of 20-80 epochs, e.g. 0.5.")
    assert found(words_tex("MultiPrice/PytorchMetricLearning, training_results.csv")) == []


def test_an_identifier_label_is_code_font_and_a_plain_one_is_text():
    assert label_tex("n_x_k") == "\\texttt{n\\_x\\_k}" and label_tex("20-80") == "20-80" and label_tex(2.0) == "2"


def test_check_names_a_hand_written_key_with_its_line_and_how_to_mend_it(tmp_path):
    paper = tmp_path / "paper"
    (paper / "chapters").mkdir(parents=True)
    (paper / "main.tex").write_text("\\input{chapters/a}\n")
    (paper / "chapters" / "a.tex").write_text("First line.\nWe report map\\_at\\_r here, and \\texttt{ok\\_name}.\n")
    assert jargon_problems(paper) == [f"{paper / 'chapters' / 'a.tex'}:2: 'map\\_at\\_r' is a key, not a word: say "
                                      "it in words, or set a name the reader types in code font (\\texttt{...})"]


@pytest.mark.skipif(not PDFTOTEXT, reason="needs pdftotext (apt-get install poppler-utils; CI installs it)")
def test_check_reads_a_generated_figures_words(tmp_path):
    from harness.render import figures

    figures._seaborn()
    import matplotlib.pyplot as plt

    paper = tmp_path / "paper"
    (paper / "generated" / "s").mkdir(parents=True)
    fig = plt.figure(figsize=(3, 1))
    fig.text(0.1, 0.5, "batch_hard_triplet against random", fontsize=9)
    fig.savefig(paper / "generated" / "s" / "figure_x.pdf")
    plt.close(fig)
    assert [p.split(": ", 1)[1][:40] for p in jargon_problems(paper)] == ["the figure shows 'batch_hard_triplet', a"]
    (paper / "generated" / "s" / "figure_x.pdf").unlink()
    assert jargon_problems(paper) == []


def test_prose_that_rests_on_a_verdict_is_held_to_the_records(tmp_path):
    from harness.prose import chapter_verdict_problems

    chapters = tmp_path / "chapters"
    chapters.mkdir()
    (chapters / "s.tex").write_text(
        "The finding is \\verdict{s}{c}{supported}; unadjusted it is \\unadjusted{s}{c}{supported}.\n"
        "A claim the records cannot decide is reported as inconclusive.\n"  # on verdicts in general: passes
        "In the quick profile the other finding is inconsistent.\n"
        "\\verdict{s}{gone}{supported} and \\verdict{other}{x}{supported}.\n")
    given = {("s", "c"): ("inconclusive", "supported"), ("s", "d"): ("supported", "supported")}
    assert [p.split(": ", 1)[1][:60] for p in chapter_verdict_problems(tmp_path, given, "quick")] == [
        "says s/c is 'supported'; the records give 'inconclusive': re",
        "\\verdict names s/gone, which is not a claim of its study",
        "'inconsistent' states a result's verdict in plain text; writ"]
    assert chapter_verdict_problems(tmp_path, given, "quick")[0].startswith(f"{chapters / 's.tex'}:1: ")
    # prose that discusses another profile's records is not held to this profile's verdicts
    (chapters / "s.tex").write_text("\\discusses{quick}\nThe finding is \\verdict{s}{c}{supported}.\n")
    assert chapter_verdict_problems(tmp_path, given, "full") == [] and len(chapter_verdict_problems(tmp_path, given, "quick")) == 1
