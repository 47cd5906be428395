"""harness/render/chapter.py: the document holds one profile, and the tables spanning the thesis cover every
study it holds, also when only some studies are rendered."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from harness import spec, store
from harness import render as rendering
from harness.render import chapter
from tests.conftest import REPO


def render(run_cli, paper: Path, results: Path, profile: str, *studies: str) -> str:
    code, out, err = run_cli("render", "--profile", profile, "--results", results, "--paper", paper, "--no-pdf",
                             "--studies", *studies)
    assert code == 0, out + err
    return err


def test_a_study_rendered_from_another_profile_leaves_the_document(tmp_path: Path, run_cli):
    paper, results = tmp_path / "paper", tmp_path / "results"
    render(run_cli, paper, results, "smoke", "arcface", "one_shot")
    assert (paper / "generated" / "arcface" / "profile.txt").read_text() == "smoke\n"
    err = render(run_cli, paper, results, "quick", "loss_epochs")
    generated = sorted(p.name for p in (paper / "generated").iterdir() if p.is_dir())
    assert generated == ["loss_epochs"]  # smoke chapters beside quick ones would mix two profiles in one PDF
    assert "arcface (rendered from profile smoke); the document holds profile quick only" in err
    verdicts = (paper / "generated" / "verdicts.tex").read_text()
    assert "{loss_epochs/" in verdicts and "arcface" not in verdicts


def test_rendering_one_study_keeps_the_others_in_the_thesis_tables(tmp_path: Path, run_cli):
    paper, results = tmp_path / "paper", tmp_path / "results"
    render(run_cli, paper, results, "quick", "arcface", "one_shot")
    err = render(run_cli, paper, results, "quick", "loss_epochs")
    assert "removed" not in err
    assert {p.name for p in (paper / "generated").iterdir() if p.is_dir()} == {"arcface", "one_shot", "loss_epochs"}
    verdicts = (paper / "generated" / "verdicts.tex").read_text()
    compute = (paper / "generated" / "compute.tex").read_text()
    artifact = (paper / "generated" / "artifact.tex").read_text()
    for study in ("arcface", "one\\_shot", "loss\\_epochs"):
        assert study.replace("\\_", "_") + "/" in verdicts and study in compute, study
    assert "T=arcface/" in artifact and "T=loss\\_epochs/" in artifact


def test_a_folder_without_a_profile_stamp_is_removed(tmp_path: Path, run_cli):
    paper, results = tmp_path / "paper", tmp_path / "results"
    (paper / "generated" / "cub_cars").mkdir(parents=True)
    (paper / "generated" / "cub_cars" / "setup.tex").write_text("% an old render\n")
    err = render(run_cli, paper, results, "quick", "loss_epochs")
    assert not (paper / "generated" / "cub_cars").exists()
    assert "rendered before folders named a profile" in err


def test_one_render_reads_each_study_once(tmp_path: Path, monkeypatch):
    """Its spec and its full profile's spec, its records and the full profile's, once each (a render of the quick
    thesis loaded a spec 30 times and scanned records 25 times before)."""
    calls = Counter()

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    counted(spec, "load")
    counted(store, "scan")
    counted(chapter, "study_records")
    paper = tmp_path / "paper"
    shutil.copytree(REPO / "paper", paper, ignore=shutil.ignore_patterns("generated", "build"))
    studies = spec.list_studies()
    rendering.render(studies, "quick", REPO / "results", paper)
    # the rendered profile's records come from its one scan; the full profile's (not run) through study_records
    assert calls == {"load": 2 * len(studies), "scan": 2 * len(studies), "study_records": len(studies)}, calls


def test_learning_shows_cell_by_cell_against_every_baseline_with_its_exceptions():
    """The conclusion's count: a trained cell is learned when its paired interval lies above every baseline of its
    table; the others are listed. On the committed quick records: loss_epochs's NCA after one epoch is below the
    raw pixels (an exception); arcface's tuned cells are above both."""
    from harness.render import learning

    data = chapter.read_study("loss_epochs", "quick", REPO / "results")
    cells = learning.study_cells(data)
    knn = {(c.row, c.column): c for c in cells if c.table == "knn_accuracy"}
    assert knn[("nca", 1)].against["raw_input"] == -1 and not knn[("nca", 1)].learned
    assert knn[("contrastive", 10)].learned and set(knn[("contrastive", 10)].against) == {"raw_input", "untrained"}
    found = learning.summary([data, chapter.read_study("arcface", "quick", REPO / "results")])
    assert found["cells"] == found["learned"] + len(found["exceptions"])
    assert not [e for e in found["exceptions"] if e.startswith("arcface/")]
    assert "loss_epochs/knn_accuracy: nca, 1: below raw input" in "\n".join(found["exceptions"])


def test_the_forest_plot_has_one_row_per_difference_grouped_by_kind(tmp_path):
    """Every computed difference of every claim (one per label of `per`), in points, kinds in the verdict table's
    order; a claim an effect cannot act in is left out."""
    from harness.render import figures

    data = chapter.read_study("cub_cars", "quick", REPO / "results")
    chapter.judge({"cub_cars": data})
    rows = chapter.forest_rows(data)
    names = [r["name"] for r in rows]
    assert "cub_cars/test_epoch_choice_inflates" not in names  # not testable here
    assert "cub_cars/small_batches_hurt (glyphs)" in names and all(r["low"] <= r["mean"] <= r["high"] for r in rows)
    assert figures.claims_forest(rows, tmp_path / "forest.pdf") == len(rows)
    assert (tmp_path / "forest.pdf").stat().st_size > 3000


def test_counts_of_one_are_singular_in_the_setup_paragraphs():
    """"1 epochs" and "evaluated after epochs 1" were printed for a one-epoch profile."""
    from harness.render import latex

    env = latex.environment(REPO / "paper" / "templates")
    source = (REPO / "paper" / "templates" / "setup.tex.j2").read_text()
    line = next(text for text in source.splitlines() if "evaluated after" in text)
    one = env.from_string(line).render(facts={"batch_size": 32, "epochs": "1", "eval_epochs": [1]})
    many = env.from_string(line).render(facts={"batch_size": 32, "epochs": "1 to 5", "eval_epochs": [1, 5]})
    assert "1 epoch, evaluated after epoch 1;" in one and "1 to 5 epochs, evaluated after epochs 1, 5;" in many


def test_another_profile_renders_into_its_own_folder_by_default(tmp_path, run_cli, monkeypatch):
    """`harness render --profile smoke` without --paper leaves paper/ (the quick thesis) alone."""
    from harness import render as rendering_module

    monkeypatch.setattr(rendering_module, "PAPER_DIR", tmp_path / "paper")
    (tmp_path / "paper").mkdir()
    for name in rendering_module.SKELETON:
        source = REPO / "paper" / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp_path / "paper" / name)
    code, _, err = run_cli("render", "--profile", "smoke", "--results", tmp_path / "none", "--studies",
                           "calibration", "--no-pdf")
    assert code == 0, err
    assert f"rendering profile smoke into {tmp_path / 'paper-smoke'}" in err
    assert (tmp_path / "paper-smoke" / "generated" / "calibration").is_dir()
    assert not (tmp_path / "paper" / "generated").exists()
