"""A table, figure or claim named in its caption (study/item) and the runs behind it: what `harness verify
study/item` and `make table T=study/item` rerun."""

from __future__ import annotations

import pytest

from harness import aggregate, spec
from harness.errors import HarnessError
from harness.plan import study_records
from harness.render import items
from tests.conftest import LATEX, REPO


@pytest.mark.parametrize("study,item,count", [
    ("loss_epochs", "knn_accuracy", 15 + 6),  # the corrected runs and the six baseline runs beside them
    ("loss_epochs", "protocols", 45 + 15),  # the original's chains and the corrected runs they are compared with
    ("loss_epochs", "nca_declines_corrected", 3),  # a claim: the three NCA runs it reads
    ("arcface", "heads", 40),  # a selected grid counts whole: the choice reads every cell (8 settings x 5 seeds)
    ("arcface", "heatmap_values", 20),  # where head = arcface: the 2 x 2 grid, 5 seeds
    ("cub_cars", "dim_recall_at_1", 15 + 10),  # three dimensions x 5 seeds and the baselines of the dataset
    ("cub_cars", "reference", 15),  # the three losses at the shared baseline setting, no baselines
])
def test_the_runs_behind_an_item(study, item, count):
    loaded = spec.load(study, "quick", components=False)
    frame = aggregate.long_frame(study_records(loaded, REPO / "results"))
    assert len(items.runs_behind(loaded.spec.report, item, frame, "quick", loaded.axes)) == count


def test_an_unknown_item_is_one_line_with_a_suggestion():
    loaded = spec.load("arcface", "quick", components=False)
    frame = aggregate.long_frame(study_records(loaded, REPO / "results"))
    with pytest.raises(HarnessError, match=r"no table, figure or claim 'head' in this study \(did you mean 'heads'\?\); items: "):
        items.runs_behind(loaded.spec.report, "head", frame, "quick")


@pytest.mark.slow
def test_verify_one_table_reruns_exactly_its_runs(tmp_path, run_cli):
    results = tmp_path / "results"
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 0, err
    code, out, err = run_cli("verify", "loss_epochs/knn_accuracy", "--profile", "smoke", "--results", results,
                             "--no-progress")
    assert code == 0, err
    assert "rerunning 7 of the 7 recorded runs behind it" in out and "protocol original" not in out
    code, _, err = run_cli("verify", "loss_epochs/knn_acuracy", "--profile", "smoke", "--results", results)
    assert code != 0 and "did you mean 'knn_accuracy'" in err


@pytest.mark.slow
def test_a_kept_verification_leaves_a_report_the_reruns_and_a_pdf_built_from_them(tmp_path, run_cli):
    results, keep = tmp_path / "results", tmp_path / "review"
    assert run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress")[0] == 0
    before = {p.name: p.read_bytes() for p in (results / "loss_epochs" / "smoke").glob("*.json")}
    (keep / "stale").mkdir(parents=True)  # an earlier report is replaced whole
    code, out, err = run_cli("verify", "loss_epochs/knn_accuracy", "--profile", "smoke", "--results", results,
                             "--no-progress", "--keep", keep, *([] if LATEX else ["--no-pdf"]))
    assert code == 0, out + err
    lines = out.splitlines()
    assert "about" in lines[2] and "judged from the records' own times" in lines[2]  # an estimate before it starts
    assert lines[3].startswith("[1/7] ") and "left" in lines[3] and "all done in" in lines[9]  # progress, time left
    assert "kept: " in out and lines[-1].endswith(": VERIFIED")
    report = (keep / "report.md").read_text()
    assert report.splitlines()[2].startswith("bit-identical: ")
    assert "## loss_epochs/knn_accuracy (table, kNN accuracy, percent)" in report
    assert "| cell | recorded | rerun | difference (points) | within the interval |" in report
    assert "| loss = contrastive, epoch = 2 | " in report and "| untrained network, epoch = 2 | " in report
    assert "val_" not in report and report.rstrip().endswith(": VERIFIED")  # only what the table shows
    assert "recomputed from 1 rerun and the 1 committed record it also reads" in report  # a claim that mixes them
    kept = {p.name for p in (keep / "results" / "loss_epochs" / "smoke").glob("*.json")}
    assert kept == set(before) and not (keep / "stale").exists()
    assert {p.name: p.read_bytes() for p in (results / "loss_epochs" / "smoke").glob("*.json")} == before
    if LATEX:
        assert (keep / "paper" / "build" / "main.pdf").stat().st_size > 10000
