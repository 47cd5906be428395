"""A study a user adds without touching harness/: a loss named by its import path, in a folder of their own
($HARNESS_EXPERIMENTS, beside the project's studies), with no hand-written chapter. It validates, runs, and
appears in the PDF with a generated chapter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import spec
from harness.errors import ConfigError
from tests.conftest import LATEX, NEEDS_LATEX, PDFTOTEXT, REPO, pdf_built


SUPCON = """\
study: supcon
title: Supervised contrastive loss on digits
question: >-
  Does pytorch-metric-learning's supervised contrastive loss, named by its import path, learn an embedding
  that beats the raw pixels?
config:
  model: {name: thesis_convnet, embedding_dim: 32, dropout: 0.25}
  optimizer: {name: adam, lr: 1.0e-3}
  train: {batch_size: 32}
  eval: {metrics: [knn_accuracy, map_at_r], knn_k: 3}
matrix:
  - loss:
      - label: supcon
        set: {loss: {name: pytorch_metric_learning.losses.SupConLoss, temperature: 0.1}}
baselines: {kinds: [raw_input]}
seeds: [0]
profiles:
  full:
    description: MNIST, 10 epochs
    config:
      data: {dataset: mnist}
      train: {epochs: 10, eval_epochs: [10]}
  quick:
    description: Fashion-MNIST, 300 training images per class, 5 epochs
    config:
      data: {dataset: fashion_mnist, train_per_class: 300}
      train: {epochs: 5, eval_epochs: [5]}
  smoke:
    description: scikit-learn digits, 30 training and 20 test images per class, 2 epochs
    config:
      data: {dataset: digits, train_per_class: 30, test_per_class: 20}
      train: {epochs: 2, eval_epochs: [1, 2]}
report:
  tables:
    - {name: knn, metric: knn_accuracy, rows: loss, columns: epoch, compare_to: raw_input,
       caption: "kNN accuracy on the test split, in percent"}
  figures:
    - {name: curve, x: epoch, hue: loss, metrics: [knn_accuracy, map_at_r], caption: "Test metrics by epoch"}
"""


@pytest.fixture
def added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "lab_studies"
    folder.mkdir()
    (folder / "supcon.yaml").write_text(SUPCON)
    monkeypatch.setattr(spec, "EXTRA_DIRS", (folder,))
    return folder


def test_an_added_folder_lists_beside_the_projects_studies(added):
    assert "supcon" in spec.list_studies() and "loss_epochs" in spec.list_studies()
    study = spec.load("supcon", "smoke")  # components checked: SupConLoss's arguments against its signature
    assert study.path == added / "supcon.yaml"
    assert {run.config.loss["name"] for run in study.runs if "baseline" not in run.axes} == {
        "pytorch_metric_learning.losses.SupConLoss"}


def test_an_import_path_is_checked_like_a_registered_name(added):
    text = (added / "supcon.yaml").read_text()
    (added / "supcon.yaml").write_text(text.replace("temperature: 0.1", "temprature: 0.1"))
    with pytest.raises(ConfigError, match=r"unknown argument 'temprature' for loss "
                                          r"'pytorch_metric_learning.losses.SupConLoss' \(did you mean 'temperature'"):
        spec.load("supcon", "smoke")
    (added / "supcon.yaml").write_text(text.replace("losses.SupConLoss", "losses.SupConLos"))
    with pytest.raises(ConfigError, match=r"loss 'pytorch_metric_learning.losses.SupConLos': cannot import it"):
        spec.load("supcon", "smoke")
    (added / "supcon.yaml").write_text(text.replace("pytorch_metric_learning.losses.SupConLoss",
                                                    "numpy.random.Generator"))
    with pytest.raises(ConfigError, match=r"is not a class derived from torch.nn.Module"):
        spec.load("supcon", "smoke")
    (added / "supcon.yaml").write_text(text.replace("pytorch_metric_learning.losses.SupConLoss", "os.path.join"))
    with pytest.raises(ConfigError, match=r"'os' is not an installed package"):  # importing it would run it
        spec.load("supcon", "smoke")


def test_one_broken_study_file_does_not_stop_the_listing(added, run_cli):
    (added / "broken.yaml").write_text("study: broken\ntitle: [unclosed\n")
    code, out, err = run_cli("list")
    assert code == 1 and "supcon: Supervised contrastive loss" in out and "loss_epochs: " in out
    assert "broken: BROKEN:" in out and "1 study file(s) cannot be loaded" in err


@pytest.mark.slow
def test_an_added_study_runs_its_smoke_profile_and_gets_a_generated_chapter(added, tmp_path, run_cli):
    results = tmp_path / "results"
    code, _, err = run_cli("run", "supcon", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 0, err
    paper = tmp_path / "paper"  # an empty folder: render gives it the project's skeleton
    code, _, err = run_cli("render", "--profile", "smoke", "--results", results, "--paper", paper,
                           "--studies", "supcon", *([] if LATEX else ["--no-pdf"]))
    assert code == 0, err
    assert "copied main.tex, references.bib, chapters, templates" in err
    assert "\\studychapter{supcon}" in (paper / "generated" / "chapters.tex").read_text()
    chapter = (paper / "generated" / "supcon" / "chapter.tex").read_text()
    assert "\\chapter{Supervised contrastive loss on digits}" in chapter
    assert "\\generated{supcon}{table_knn}" in chapter and "\\generated{supcon}{figure_curve}" in chapter
    assert "SupConLoss" in (paper / "generated" / "supcon" / "setup.tex").read_text()
    pdf = pdf_built(paper)
    if not PDFTOTEXT:
        pytest.skip("reading the PDF needs pdftotext (apt-get install poppler-utils; CI installs it)")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Supervised contrastive loss on digits" in text and "supcon/knn" in text
    # the hand-written chapters discuss the quick records: in a smoke PDF each says so at its start
    assert "The prose of this chapter discusses the quick profile’s records" in text


def test_a_misspelt_component_argument_is_caught_by_list_and_show_as_by_run(added, run_cli, tmp_path):
    (added / "supcon.yaml").write_text(SUPCON.replace("temperature: 0.1", "temperatur: 0.1"))
    said = "unknown argument 'temperatur' for loss 'pytorch_metric_learning.losses.SupConLoss' (did you mean " \
           "'temperature'?)"
    code, out, err = run_cli("list")
    assert code == 1 and "supcon: BROKEN: " in out and said in out
    for argv in (["show", "supcon", "--profile", "smoke"],
                 ["run", "supcon", "--profile", "smoke", "--results", tmp_path / "r", "--dry-run"]):
        code, _, err = run_cli(*argv)
        assert code == 2 and said in err, argv


@NEEDS_LATEX
@pytest.mark.slow
def test_the_whole_thesis_builds_with_an_added_study_that_has_no_records(added, tmp_path, run_cli):
    """`make figures` with HARNESS_EXPERIMENTS set: the quick thesis from the committed records, and the added
    study's chapter saying how to produce its records."""
    paper = tmp_path / "paper"
    code, _, err = run_cli("render", "--profile", "quick", "--results", REPO / "results", "--paper", paper)
    assert code == 0, err
    assert "harness run supcon -{}-profile quick" in (paper / "generated" / "supcon" / "missing.tex").read_text()
    assert "\\studychapter{supcon}" in (paper / "generated" / "chapters.tex").read_text()
    assert pdf_built(paper).stat().st_size > 100000


def test_harness_experiments_adds_studies_for_a_new_process(added):
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(added)}
    done = subprocess.run([sys.executable, "-m", "harness", "list"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "supcon: Supervised contrastive loss" in done.stdout and "arcface: " in done.stdout


def test_a_mistyped_harness_experiments_folder_is_one_line_naming_it(tmp_path):
    """Issue 30: a folder that does not exist was ignored, and its study then 'unknown' without naming where."""
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(tmp_path / "lab_studeis")}
    done = subprocess.run([sys.executable, "-m", "harness", "run", "supcon"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"$HARNESS_EXPERIMENTS names {tmp_path / 'lab_studeis'}, which is not a folder" in done.stderr
