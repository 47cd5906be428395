"""Rendering is all or nothing per study, and the PDF build refuses to run when a file the chapters include is
missing: a killed or failed render can no longer yield a PDF silently short of a table or figure."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from harness import aggregate, identity, spec, store
from harness.errors import HarnessError
from harness.render import chapter, compile_pdf, figures, latex, render
from harness.render.pdf import missing_includes
from tests.conftest import NEEDS_LATEX, REPO



def report_metrics(study: spec.Study) -> set[str]:
    report = study.spec.report
    names = {t.metric for t in report.tables} | {m for f in report.figures for m in f.metrics}
    names |= {item.select.by for item in [*report.tables, *report.figures] if item.select}
    if report.reference:
        names |= {report.reference.metric} | {c.ours for c in report.reference.values}
    return names


def fake_records(results: Path, name: str, profile: str = "smoke", *, shift: float = 0.0,
                 fail: dict | None = None) -> None:
    """A record for every run of a study's matrix, with made-up metrics (rendering needs no training);
    runs whose axes include `fail` are recorded as failed."""
    study = spec.load(name, profile, components=False)
    metrics = sorted(report_metrics(study))
    for i, run in enumerate(study.runs):
        config = run.config_dict()
        failed = fail is not None and fail.items() <= run.axes.items()
        store.write(results, {
            "schema_version": 2, "run_id": run.run_id, "study": name, "profile": profile, "axes": run.axes,
            "seed": run.seed, "config": config, "status": "failed" if failed else "ok", "loss_curve": [],
            "metrics": [] if failed else [{"epoch": e, **{m: (0.1 + 0.05 * i + 0.01 * e + shift) % 1 for m in metrics}}
                                          for e in config["train"]["eval_epochs"]],
            "error": {"type": "RuntimeError", "message": "no batch had a positive pair"} if failed else None,
            "data": None if failed else {"train_size": 10, "test_size": 10, "num_classes": 4,
                                         "input_shape": [1, 8, 8], "normalisation": {}},
            "timing": {"wall_s": 1.0}, "provenance": {"git": {"commit": "0" * 40, "dirty": False},
                                                    "accelerate": {"device": "cpu"}}})


@pytest.fixture
def paper(tmp_path: Path) -> Path:
    target = tmp_path / "paper"
    shutil.copytree(REPO / "paper", target, ignore=shutil.ignore_patterns("generated", "build"))
    return target


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def hidden(generated: Path) -> list[str]:
    return [p.name for p in generated.iterdir() if p.name.startswith(".")]


def test_a_render_replaces_the_folder_whole(tmp_path: Path, paper: Path):
    results = tmp_path / "results"
    fake_records(results, "loss_epochs")
    render(["loss_epochs"], "smoke", results, paper)
    folder = paper / "generated" / "loss_epochs"
    (folder / "table_renamed_since.tex").write_text("% a table the report no longer declares\n")
    written = render(["loss_epochs"], "smoke", results, paper)
    assert sorted(p.name for p in written if p.parent == folder) == sorted(p.name for p in folder.iterdir())
    assert paper / "generated" / "verdicts.tex" in written  # the conclusion's table of every claim's verdict
    assert not (folder / "table_renamed_since.tex").exists()
    assert {"setup.tex", "table_knn_accuracy.tex", "figure_curves.pdf", "reference.tex"} <= set(snapshot(folder))
    assert hidden(paper / "generated") == []


def test_a_render_that_fails_midway_leaves_the_previous_render_intact(tmp_path: Path, paper: Path, monkeypatch):
    results = tmp_path / "results"
    fake_records(results, "loss_epochs")
    render(["loss_epochs"], "smoke", results, paper)
    folder = paper / "generated" / "loss_epochs"
    before = snapshot(folder)

    def crash_while_writing(fig, path: Path, width: float = 1.0) -> None:  # half a figure on disk, then it dies
        path.write_bytes(b"%PDF-1.4 half")
        raise KeyboardInterrupt

    shutil.rmtree(results)
    fake_records(results, "loss_epochs", shift=0.3)  # new numbers, which must not reach the folder half-way
    monkeypatch.setattr(figures, "save_pdf", crash_while_writing)
    with pytest.raises(KeyboardInterrupt):
        render(["loss_epochs"], "smoke", results, paper)
    assert snapshot(folder) == before
    assert hidden(paper / "generated") == []
    monkeypatch.undo()
    render(["loss_epochs"], "smoke", results, paper)
    assert snapshot(folder)["table_knn_accuracy.tex"] != before["table_knn_accuracy.tex"]


def test_leftovers_of_a_killed_render_are_cleared_and_never_read(tmp_path: Path, paper: Path):
    results = tmp_path / "results"
    fake_records(results, "loss_epochs")
    leftover = paper / "generated" / ".loss_epochs.rendering.x1y2"
    leftover.mkdir(parents=True)
    (leftover / "figure_curves.pdf").write_bytes(b"%PDF-1.4 half")
    render(["loss_epochs"], "smoke", results, paper)
    assert hidden(paper / "generated") == []
    assert (paper / "generated" / "loss_epochs" / "figure_curves.pdf").read_bytes().startswith(b"%PDF")
    assert (paper / "generated" / "loss_epochs" / "figure_curves.pdf").stat().st_size > 1000


def test_a_missing_included_figure_stops_the_pdf_build_naming_it(tmp_path: Path, paper: Path):
    results = tmp_path / "results"
    fake_records(results, "loss_epochs")
    render(["loss_epochs"], "smoke", results, paper)
    (paper / "generated" / "loss_epochs" / "figure_curves.pdf").unlink()
    with pytest.raises(HarnessError) as error:
        compile_pdf(paper)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("generated/loss_epochs/figure_curves.tex includes "
                              "generated/loss_epochs/figure_curves.pdf, which is missing")
    assert not (paper / "build" / "main.pdf").exists()


def test_a_missing_included_table_stops_the_pdf_build_naming_it(tmp_path: Path, paper: Path):
    results = tmp_path / "results"
    fake_records(results, "loss_epochs")
    render(["loss_epochs"], "smoke", results, paper)
    (paper / "generated" / "loss_epochs" / "table_map_at_r.tex").unlink()
    (paper / "generated" / "loss_epochs" / "reference.tex").unlink()
    with pytest.raises(HarnessError, match=r"^chapters/loss_epochs.tex includes generated/loss_epochs/"
                                           r"table_map_at_r.tex, which is missing \(and 1 more\)"):
        compile_pdf(paper)


def test_studies_not_rendered_or_without_records_are_not_missing_files(tmp_path: Path, paper: Path):
    fake_records(tmp_path / "results", "loss_epochs")
    render(["loss_epochs", "arcface"], "smoke", tmp_path / "results", paper)  # arcface: no records
    assert (paper / "generated" / "arcface" / "missing.tex").exists()
    assert not (paper / "generated" / "one_shot").exists()
    assert list(missing_includes(paper)) == []


@NEEDS_LATEX
def test_items_of_another_profile_get_a_stand_in_and_the_pdf_builds(tmp_path: Path, paper: Path):
    """cub_cars' smoke matrix has no dim, margin or loss axis: those tables, the figure and the reference are
    stand-ins, so the chapter's includes all exist; batch 1 failed and its row says so."""
    results = tmp_path / "results"
    fake_records(results, "cub_cars", fail={"batch": 1})
    render(["cub_cars"], "smoke", results, paper)
    folder = paper / "generated" / "cub_cars"
    stand_in = (folder / "table_dim_recall_at_1.tex").read_text()
    assert "Not drawn for profile smoke: its runs have no axis dim." in stand_in
    assert not (folder / "figure_dim_curve.pdf").exists() and (folder / "figure_dim_curve.tex").exists()
    assert "\\texttt{1} & failed & failed" in (folder / "table_batch_recall_at_1.tex").read_text()
    assert list(missing_includes(paper)) == []
    assert compile_pdf(paper) == paper / "build" / "main.pdf" and (paper / "build" / "main.pdf").exists()


def made_up_record(study: spec.Study, axes: dict, seed: int, metrics: dict, epochs: list[int]) -> store.RunRecord:
    config = {"seed": seed, "cell": axes, "data": {"dataset": "digits"}, "model": {"name": "thesis_convnet"},
              "optimizer": {"name": "adam", "lr": 0.001},
              "train": {"batch_size": 32, "epochs": max(epochs), "eval_epochs": epochs}}
    return store.validate({
        "schema_version": 2, "run_id": identity.run_id(config), "study": study.name, "profile": study.profile,
        "axes": axes, "seed": seed, "config": config, "status": "ok", "loss_curve": [],
        "metrics": [{"epoch": e, **metrics} for e in epochs], "error": None,
        "data": {"train_size": 10, "test_size": 10, "num_classes": 4, "input_shape": [1, 8, 8], "normalisation": {}},
        "timing": {"wall_s": 1.0}, "provenance": {"git": {"commit": "0" * 40, "dirty": False},
                                                "accelerate": {"device": "cpu"}}})


@NEEDS_LATEX
def test_baselines_and_paired_marks_reach_the_chapter_and_the_pdf_builds(tmp_path: Path, paper: Path):
    """loss_epochs (smoke) with two seeds per loss and both baselines, its tables comparing with raw_input: the
    baseline rows come first, marks show, the figure has the reference lines, and LaTeX accepts it all."""
    study = spec.load("loss_epochs", "smoke", components=False)
    metrics = sorted(report_metrics(study))
    losses = list(dict.fromkeys(run.axes["loss"] for run in study.runs if "loss" in run.axes))
    records = [made_up_record(study, {"loss": loss}, seed, {m: 0.5 + 0.08 * i + 0.01 * seed for m in metrics},
                              [1, 2])
               for i, loss in enumerate(losses) for seed in (0, 1)]
    records += [made_up_record(study, {"baseline": label}, seed, {m: value + 0.001 * seed for m in metrics}, [0])
                for label, value in (("raw_input", 0.6), ("untrained", 0.2)) for seed in (0, 1)]
    report = study.spec.report
    tables_ = [t.model_copy(update={"compare_to": "raw_input"}) for t in report.tables]
    study = dataclasses.replace(study, spec=study.spec.model_copy(
        update={"report": report.model_copy(update={"tables": tables_})}))
    env = latex.environment(paper / "templates")
    full = spec.load("loss_epochs", "full", components=False)
    data = chapter.StudyData(study, full, records, aggregate.long_frame(records))
    chapter.render_study(data, paper / "generated", env)
    folder = paper / "generated" / "loss_epochs"
    table = (folder / "table_knn_accuracy.tex").read_text()
    lines = table[table.index("\\midrule"):].splitlines()
    assert lines[1].startswith("\\textit{raw input} & 60.05") and lines[2].startswith("\\textit{untrained network}")
    assert lines[3] == "\\midrule" and "$^{\\downarrow}$" in table and "$^{\\uparrow}$" in table
    assert "above/below \\emph{raw input} in the same column (paired by seed" in table
    assert "Dashed lines: baselines that do not train" in (folder / "figure_curves.tex").read_text()
    assert "Baselines that do not train" in (folder / "setup.tex").read_text()
    assert "raw input" not in (folder / "reference.tex").read_text()  # the original's table has no baselines
    assert compile_pdf(paper) == paper / "build" / "main.pdf"
