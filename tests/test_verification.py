"""harness.verification: a rerun compared with the records the way a reader compares them (cells against the
seed-to-seed spread, chosen cells, marks, claim verdicts), and which environment calls for which comparison."""

from __future__ import annotations

import json

import pytest

from harness import provenance, spec, store, verification
from harness.plan import study_records
from tests.conftest import HOST_KEYS, REPO, other_host

HERE = provenance.numerics()
ELSEWHERE = other_host(HERE)  # another machine: every host value differs from this one's, whatever this host is


def arcface():
    study = spec.load("arcface", "quick", components=False)
    return study, study_records(study, REPO / "results")


def shifted(record: store.RunRecord, metric: str, by: float) -> store.RunRecord:
    """The record as a rerun that moved one metric by `by` at every epoch."""
    metrics = [{**m, metric: m[metric] + by} if metric in m else m for m in record.metrics]
    return record.model_copy(update={"metrics": metrics})


def check(study, records, reruns, items=None):
    return verification.check(study.spec.report, study.name, study.profile, study.axes, records, reruns, items,
                              1e-6, study.spec.report.axis_labels)


def test_a_rerun_identical_to_the_records_is_identical_everywhere():
    study, records = arcface()
    checks = check(study, records, {r.run_id: r for r in records})
    assert checks and all(c.identical and c.holds for c in checks)
    assert {c.kind for c in checks} == {"table", "figure", "claim"}


def test_a_rerun_within_seed_noise_holds_and_a_tampered_cell_outside_it_fails():
    study, records = arcface()
    # Every run moves by 0.0001 (0.01 points, one image in 10,000): not what a reader of the table would call a
    # different result, and inside every cell's interval.
    noisy = {r.run_id: shifted(r, "classification_accuracy", 1e-4) for r in records}
    checks = check(study, records, noisy, ["heads"])
    (table,) = [c for c in checks if c.name == "arcface/heads"]
    assert not table.identical and table.holds, verification.report_lines(table)
    # One seed of ArcFace at m = 0.4, s = 2 drops by 20 points: that cell leaves its interval, and the claims
    # that read it notice.
    target = next(r for r in records if r.axes == {"head": "arcface", "m": 0.4, "s": 2} and r.seed == 0)
    tampered = {target.run_id: shifted(target, "classification_accuracy", -0.20)}
    checks = {c.name: c for c in check(study, records, tampered)}
    grid = checks["arcface/heatmap_values"]
    assert not grid.holds and any(c.cell == "margin m = 0.4, scale s = 2" for c in grid.outside), \
        verification.report_lines(grid)  # named as the table names its row and column
    claim = checks["arcface/tuning_m_s_helps"]  # ArcFace tuned against m = 0.4, s = 2: now far larger
    assert not claim.holds and claim.outside
    lines = verification.report_lines(grid)
    assert "DIFFERS" in lines[0] and any(line.endswith("outside") for line in lines)
    assert len(lines) <= len(grid.cells) + 2  # one line per cell at most, never one per metric and epoch


def test_a_verdict_that_no_longer_follows_is_a_change():
    study, records = arcface()
    # ArcFace at the original's settings far ahead of softmax on every seed: 'inconclusive' becomes 'consistent'.
    reruns = {r.run_id: shifted(r, "classification_accuracy", 0.05) for r in records
              if r.axes == {"head": "arcface", "m": 0.4, "s": 2}}
    checks = {c.name: c for c in check(study, records, reruns)}
    changes = checks["arcface/arcface_beats_softmax_original_settings"].changes
    assert "verdict inconclusive -> consistent" in changes
    assert any("the study declares 'inconclusive'" in c for c in changes)


def record_with(numerics):
    """A committed record written before environments were recorded (seeds 0-2), given these numerics."""
    _, records = arcface()
    old = next(r for r in records if r.provenance.numerics is None)
    return old.model_copy(update={"provenance": old.provenance.model_copy(update={"numerics": numerics})})


def test_the_environment_decides_between_bit_identity_and_the_table_level_check():
    assert verification.environment([record_with(dict(HERE))], HERE).same
    capability = ELSEWHERE["cpu_capability"]
    other = verification.environment([record_with({**HERE, "cpu_capability": capability})], HERE)
    assert not other.same
    assert f"cpu_capability ({capability} recorded, {HERE['cpu_capability']} here)" in other.text
    threads = verification.environment([record_with({**HERE, "threads": ELSEWHERE["threads"]})], HERE)
    assert not threads.same and f"threads ({ELSEWHERE['threads']} recorded, {HERE['threads']} here)" in threads.text
    elsewhere = verification.environment([record_with(ELSEWHERE)], HERE)
    assert not elsewhere.same and all(f"{key} (" in elsewhere.text for key in HOST_KEYS)
    unknown = verification.environment([record_with(None)], HERE)
    assert not unknown.same and "the records do not say" in unknown.text
    partly = verification.environment([record_with(dict(HERE)), record_with(None), record_with(None)], HERE)
    assert not partly.same and "2 of 3 records do not say" in partly.text  # seeds added later, on this host
    mixed = verification.environment([record_with(dict(HERE)), record_with({**HERE, "gpu": "H100"})], HERE)
    assert not mixed.same and "2 numerical environments (differing in gpu)" in mixed.text


def test_verify_reruns_with_the_records_thread_count():
    assert verification.recorded_threads([record_with({**HERE, "threads": 1})] * 2) == 1
    assert verification.recorded_threads([record_with({**HERE, "threads": 1}), record_with(None)]) is None


def test_a_record_says_in_which_numerical_environment_it_was_computed():
    assert {"cpu", "cpu_id", "cpu_capability", "threads", "gpu", "cuda", "cudnn", "deterministic_algorithms",
            "torch"} <= set(HERE)
    assert HERE["cpu_capability"]  # e.g. AVX2: the kernels torch dispatches to on this CPU
    # Records written before it was recorded keep their digest; a record that has it is sealed with it.
    record = record_with(None)
    assert record.intact()
    sealed = record_with(dict(HERE))
    sealed = sealed.model_copy(update={"digest": sealed.content_digest()})
    assert sealed.intact()
    edited = sealed.model_copy(update={"provenance": sealed.provenance.model_copy(
        update={"numerics": {**HERE, "threads": 99}})})
    assert not edited.intact()


def fake_host(results, study="loss_epochs", profile="smoke", **changes):
    """Rewrite every record as if another machine had computed it (sealed again, so it reads as intact)."""
    for path in (results / study / profile).glob("*.json"):
        record = store.read(path)
        numerics = {**(record.provenance.numerics or HERE), **changes}
        store.write(results, record.model_copy(update={"provenance": record.provenance.model_copy(
            update={"numerics": numerics})}))


@pytest.mark.slow
def test_verify_on_another_host_compares_tables_and_on_the_same_host_demands_identity(tmp_path, run_cli):
    results = tmp_path / "results"
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                           "--shard", "1/7")
    assert code == 0, err
    code, out, err = run_cli("verify", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                             "--tolerance", "0")
    assert code == 0, out + err
    first = out.splitlines()[0]  # what is demanded comes first, the verdict last
    assert first.startswith("bit-identical: this machine computes as the one that made the records")
    assert "identical to the records" in out and out.splitlines()[-1].endswith(": VERIFIED")

    fake_host(results, cpu_capability=ELSEWHERE["cpu_capability"], cpu=ELSEWHERE["cpu"])
    code, out, err = run_cli("verify", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                             "--tolerance", "0")
    assert code == 0, out + err
    first = out.splitlines()[0]
    assert first.startswith("another environment: this machine differs from the recording one in cpu "
                            f"({ELSEWHERE['cpu']} recorded, {HERE['cpu']} here)")
    assert "checked against the records' seed-to-seed spread" in first and out.splitlines()[-1].endswith(": VERIFIED")
    assert f"records: 1 from {ELSEWHERE['cpu']} (" in out

    # A record whose number a rerun cannot give: on the same host that is a failure of identity; elsewhere a
    # failure of the cell (one seed: no interval, so the tolerance decides).
    (path,) = (results / "loss_epochs" / "smoke").glob("*.json")
    raw = json.loads(path.read_text())
    raw["metrics"][-1]["knn_accuracy"] = raw["metrics"][-1]["knn_accuracy"] / 2
    record = store.validate(raw)
    store.write(results, record)
    code, out, err = run_cli("verify", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                             "--tolerance", "0")
    assert code == 1 and "loss_epochs/knn_accuracy, " in out and " differ); " in out and "outside" in out
    assert out.splitlines()[-1].endswith(": NOT VERIFIED")


def test_a_mark_that_moves_while_every_cell_holds_is_reported_as_borderline_not_a_failure():
    study, records = arcface()
    item = verification.ItemCheck("arcface/heads", "table", 100.0, [], [], ["m / 2: marked higher -> unmarked"])
    assert item.holds and not item.identical
    assert "borderline marks moved (m / 2: marked higher -> unmarked)" in verification.report_lines(item)[0]
    item.changes.append("chosen cell a -> b")  # a selection that moves is a conclusion that moved
    assert not item.holds
