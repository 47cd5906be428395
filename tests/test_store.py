"""store: atomic round trip, corrupt files reported by name and never taken as finished, no escape from results/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import store
from harness.errors import RecordError


def make_record(run_id: str = "0123456789abcdef", status: str = "ok") -> dict:
    return {"schema_version": store.SCHEMA_VERSION, "run_id": run_id, "study": "loss_epochs", "profile": "smoke",
            "axes": {"loss": "nca"}, "seed": 0, "config": {"seed": 0}, "status": status,
            "metrics": [{"epoch": 1, "knn_accuracy": 0.5}], "loss_curve": [{"epoch": 1, "step": 1, "loss": 1.0}],
            "timing": {"wall_s": 1.0}, "provenance": {"git": {"commit": None, "dirty": None}}}


def test_round_trip_and_no_temporary_left(tmp_path: Path):
    record = make_record()
    path = store.write(tmp_path, record)
    assert path == tmp_path / "loss_epochs" / "smoke" / "0123456789abcdef.json"
    assert store.read(path) == record
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o644


def test_rewrite_replaces_whole_file(tmp_path: Path):
    store.write(tmp_path, make_record(status="failed"))
    path = store.write(tmp_path, make_record(status="ok"))
    assert store.read(path)["status"] == "ok"


def test_nan_is_refused_rather_than_written(tmp_path: Path):
    record = make_record()
    record["metrics"][0]["knn_accuracy"] = float("nan")
    with pytest.raises(ValueError):
        store.write(tmp_path, record)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("content,why", [
    ('{"run_id": "0123456789abcdef", "status": "ok"', "corrupt or unreadable"),
    ("[]", "not a JSON object"),
    ('{"run_id": "0123456789abcdef", "status": "ok"}', "missing schema_version"),
])
def test_corrupt_records_are_reported_by_name(tmp_path: Path, content: str, why: str):
    good = store.write(tmp_path, make_record("aaaaaaaaaaaaaaaa"))
    bad = good.parent / "0123456789abcdef.json"
    bad.write_text(content)
    with pytest.raises(RecordError, match=why):
        store.read(bad)
    scan = store.scan(tmp_path, "loss_epochs", "smoke")
    assert list(scan.ok) == ["aaaaaaaaaaaaaaaa"]
    assert "0123456789abcdef" in scan.corrupt and str(bad) in scan.corrupt["0123456789abcdef"]


def test_record_under_the_wrong_name_is_not_trusted(tmp_path: Path):
    path = store.write(tmp_path, make_record())
    moved = path.parent / "ffffffffffffffff.json"
    moved.write_text(path.read_text())
    with pytest.raises(RecordError, match="not its file name"):
        store.read(moved)


def test_failed_records_are_kept_apart(tmp_path: Path):
    store.write(tmp_path, make_record("aaaaaaaaaaaaaaaa", "failed"))
    scan = store.scan(tmp_path, "loss_epochs", "smoke")
    assert not scan.ok and list(scan.failed) == ["aaaaaaaaaaaaaaaa"]


@pytest.mark.parametrize("study,profile", [("../evil", "smoke"), ("loss_epochs", "../../x"), ("/abs", "quick"),
                                           ("a/b", "quick"), (".hidden", "quick")])
def test_names_cannot_escape_results(tmp_path: Path, study: str, profile: str):
    record = {**make_record(), "study": study, "profile": profile}
    with pytest.raises(RecordError, match="not allowed"):
        store.write(tmp_path / "results", record)
    assert not (tmp_path / "results").exists() and not (tmp_path / "evil").exists()


def test_incomplete_record_is_not_written(tmp_path: Path):
    record = make_record()
    del record["provenance"]
    with pytest.raises(RecordError, match="without provenance"):
        store.write(tmp_path, record)
    assert not list(tmp_path.rglob("*"))


def test_records_are_plain_sorted_json(tmp_path: Path):
    path = store.write(tmp_path, make_record())
    text = path.read_text()
    assert json.loads(text) == make_record() and text.endswith("\n")
