"""Pre-registration: a profile's claims, seeds and analysis frozen before any run of it. Written from the study
files and the pilot's records; printed in the appendix; every record of that profile carries its hash; `check` on
that profile fails, one line each, on a claim or seeds that moved, and on a record made under another file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from harness import preregistration, spec, store
from harness.errors import HarnessError
from tests.conftest import REPO


@pytest.fixture
def registered(experiments: Path, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A copy of experiments/ (the project's folder for this test) with the full profile pre-registered from
    the committed quick records, and an empty results folder for the full profile."""
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    results = tmp_path / "results"
    shutil.copytree(REPO / "results", results)
    shutil.rmtree(experiments / preregistration.FOLDER, ignore_errors=True)
    preregistration.write("full", "quick", results, experiments)
    return experiments, results


def test_the_seeds_come_from_a_power_calculation():
    # A difference of one standard deviation at the 5 % level needs 10 pairs for 80 % power (a standard
    # table value for the paired t-test); half the spread needs fewer; a stricter level needs more.
    assert preregistration.seeds_needed(1.0, 1.0, 0.05) == 10
    assert preregistration.seeds_needed(1.0, 0.5, 0.05) < 10 < preregistration.seeds_needed(1.0, 1.0, 0.0025)
    assert preregistration.seeds_needed(0.1, 10.0, 0.0025) is None  # not within 1,000 seeds


def test_the_file_freezes_every_claim_and_the_study_files_declare_its_seeds(registered):
    experiments, _ = registered
    doc = preregistration.read(experiments, "full")
    frozen = doc["frozen"]["studies"]
    assert set(frozen) == set(spec.list_studies())
    for name, study in frozen.items():
        assert len(study["seeds"]) >= doc["power"]["studies"][name]["seeds"], name  # the study files follow it
        assert set(study["claims"]) == {c.name for c in spec.load(name, "full", components=False).spec.report.claims}
    nca = frozen["loss_epochs"]["claims"]["nca_declines_original_protocol"]
    assert nca["a"]["where"]["budget"] == 50 and nca["b"]["where"]["budget"] == 1  # places resolved to labels
    assert doc["power"]["studies"]["loss_epochs"]["claims"]["nca_declines_corrected"]["original_effect"] == -0.44


def test_check_on_a_pre_registered_profile_without_records_passes(registered, run_cli):
    experiments, results = registered
    code, out, err = run_cli("check", "--profile", "full", "--results", results)
    assert code == 0, err
    assert "is pre-registered" in out and "no record of it yet" in out


def test_a_tampered_pre_registration_fails_the_check_naming_the_claim(registered, run_cli):
    experiments, results = registered
    path = preregistration.path_for(experiments, "full")
    doc = yaml.safe_load(path.read_text())
    doc["frozen"]["studies"]["arcface"]["claims"]["tuning_m_s_helps"]["expect"] = "lower"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run_cli("check", "--profile", "full", "--results", results)
    assert code == 1
    lines = [line for line in err.splitlines() if "differs from the pre-registration" in line]
    assert len(lines) == 1 and "claim 'tuning_m_s_helps'" in lines[0] and "expect" in lines[0]


def test_seeds_changed_after_the_pre_registration_fail_the_check(registered, run_cli):
    experiments, results = registered
    study = experiments / "nk_sampling.yaml"
    study.write_text(study.read_text().replace("    seeds: [0, 1, 2, 3, 4]  # the pre-registration's minimum",
                                               "    seeds: [0, 1, 2]  # the pre-registration's minimum"))
    code, _, err = run_cli("check", "--profile", "full", "--results", results)
    assert code == 1 and "nk_sampling: seeds [0, 1, 2] differ from the pre-registered [0, 1, 2, 3, 4]" in err


def test_runs_carry_the_files_hash_and_a_record_under_another_fails_the_check(registered, run_cli):
    experiments, results = registered
    digest = preregistration.sha256_of(experiments, "full")
    study = spec.load("nk_sampling", "full", experiments, components=False)
    assert {run.preregistration for run in study.runs} == {digest}
    quick = spec.load("nk_sampling", "quick", experiments, components=False)
    assert {run.preregistration for run in quick.runs} == {None}  # quick has no pre-registration
    record = next(iter(store.scan(results, "nk_sampling", "quick").ok.values()))
    run = study.runs[0]
    made = record.model_copy(update={"profile": "full", "run_id": run.run_id, "config": run.config_dict(),
                                     "seed": run.seed, "axes": run.axes,
                                     "provenance": record.provenance.model_copy(update={"preregistration": "0" * 64})})
    store.write(results, made)
    code, _, err = run_cli("check", "--profile", "full", "--results", results)
    assert code == 1, err
    assert f"record {run.run_id} carries pre-registration {'0' * 64}, not {digest[:12]}" in err


def test_preregister_comes_before_any_run_and_is_written_once(registered, run_cli):
    experiments, results = registered
    code, _, err = run_cli("preregister", "--profile", "full", "--results", results)
    assert code != 0 and "a pre-registration is written once" in err
    (results / "arcface" / "full").mkdir(parents=True)
    shutil.copy(next((results / "arcface" / "quick").glob("*.json")), results / "arcface" / "full")
    with pytest.raises(HarnessError, match="a pre-registration must come before any run"):
        preregistration.write("full", "quick", results, experiments, force=True)


def test_a_records_hash_field_leaves_earlier_digests_alone():
    record = next(iter(store.scan(REPO / "results", "arcface", "quick").ok.values()))
    assert record.provenance.preregistration is None and record.intact()


def test_a_change_to_the_analysis_code_after_the_pre_registration_fails_the_check(registered, run_cli):
    experiments, results = registered
    path = preregistration.path_for(experiments, "full")
    doc = yaml.safe_load(path.read_text())
    doc["frozen"]["code"]["harness/claims.py"] = "0" * 64  # as if claims.py had changed since
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run_cli("check", "--profile", "full", "--results", results)
    assert code == 1
    assert "harness/claims.py changed since the pre-registration" in err and "--force" in err
