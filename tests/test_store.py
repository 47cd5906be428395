"""store: typed records validated on write and read, atomic round trip, corrupt files reported by name and never
taken as finished, no escape from results/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import fake_record
from harness import store
from harness.errors import RecordError


def make_record(seed: int = 0, status: str = "ok") -> dict:
    # Distinct run ids come from distinct configs: a record's config must hash to its run_id.
    return fake_record({"seed": seed, "model": {"name": "thesis_convnet"}}, status)


def test_round_trip_and_no_temporary_left(tmp_path: Path):
    record = make_record()
    path = store.write(tmp_path, record)
    assert path == tmp_path / "loss_epochs" / "smoke" / f"{record['run_id']}.json"
    written = store.read(path)
    assert written.model_copy(update={"digest": None}) == store.validate(record)
    assert written.intact() and written.digest == store.validate(record).content_digest()  # sealed as written
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o644


def test_rewrite_replaces_whole_file(tmp_path: Path):
    store.write(tmp_path, make_record(status="failed"))
    path = store.write(tmp_path, make_record(status="ok"))
    assert store.read(path).status == "ok"


def test_nan_is_refused_rather_than_written(tmp_path: Path):
    record = make_record()
    record["metrics"][0]["knn_accuracy"] = float("nan")
    with pytest.raises(RecordError, match="not all finite"):
        store.write(tmp_path, record)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("change,why", [
    (lambda r: r.update(status="failed"), "a failed record carries an error"),
    (lambda r: r.update(seed=5), "differs from the config's seed"),
    (lambda r: r["config"].update(model={"name": "cifar_resnet"}), "its config hashes to run_id"),
    (lambda r: r["metrics"].append({"epoch": 1, "knn_accuracy": 0.9}), "not increasing"),
    (lambda r: r["metrics"][0].pop("epoch"), "integer epoch"),
    (lambda r: r.pop("provenance"), "provenance: Field required"),
    (lambda r: r.update(surprise=1), "surprise: Extra inputs are not permitted"),
])
def test_an_inconsistent_record_is_refused_on_write(tmp_path: Path, change, why):
    record = make_record()
    change(record)
    with pytest.raises(RecordError, match=why):
        store.write(tmp_path, record)
    assert not list(tmp_path.rglob("*"))


@pytest.mark.parametrize("content,why", [
    ('{"run_id": "0123456789abcdef", "status": "ok"', "corrupt or unreadable"),
    ("[]", "not a JSON object"),
    ('{"run_id": "0123456789abcdef", "status": "ok"}', "schema version None"),
])
def test_corrupt_records_are_reported_by_name(tmp_path: Path, content: str, why: str):
    good = store.write(tmp_path, make_record(1))
    bad = good.parent / "0123456789abcdef.json"
    bad.write_text(content)
    with pytest.raises(RecordError, match=why):
        store.read(bad)
    scan = store.scan(tmp_path, "loss_epochs", "smoke")
    assert list(scan.ok) == [good.stem]
    assert "0123456789abcdef" in scan.corrupt and str(bad) in scan.corrupt["0123456789abcdef"]


def test_a_metric_edited_by_hand_still_reads_but_a_config_edit_does_not(tmp_path: Path):
    path = store.write(tmp_path, make_record())
    raw = json.loads(path.read_text())
    raw["config"]["model"]["name"] = "resnet50"
    path.write_text(json.dumps(raw))
    with pytest.raises(RecordError, match=f"{path}: corrupt run record .*hashes to run_id"):
        store.read(path)


def test_record_under_the_wrong_name_is_not_trusted(tmp_path: Path):
    path = store.write(tmp_path, make_record())
    moved = path.parent / "ffffffffffffffff.json"
    moved.write_text(path.read_text())
    with pytest.raises(RecordError, match="not its file name"):
        store.read(moved)


def test_version_1_records_read_with_the_thread_count_under_its_name(tmp_path: Path):
    record = make_record()
    record["provenance"]["cpu_count"] = 2  # version 1 wrote torch.get_num_threads() there
    path = store.write(tmp_path, {**record, "provenance": {"git": {"commit": None, "dirty": None}}})
    raw = json.loads(path.read_text())
    raw["schema_version"] = 1
    raw["provenance"] = {"git": raw["provenance"]["git"], "cpu_count": 2}
    path.write_text(json.dumps(raw))
    read = store.read(path)
    assert read.schema_version == 2 and read.provenance.torch_threads == 2 and read.provenance.cpu_count is None


def test_failed_records_are_kept_apart(tmp_path: Path):
    path = store.write(tmp_path, make_record(1, "failed"))
    scan = store.scan(tmp_path, "loss_epochs", "smoke")
    assert not scan.ok and list(scan.failed) == [path.stem]


@pytest.mark.parametrize("study,profile", [("../evil", "smoke"), ("loss_epochs", "../../x"), ("/abs", "quick"),
                                           ("a/b", "quick"), (".hidden", "quick")])
def test_names_cannot_escape_results(tmp_path: Path, study: str, profile: str):
    record = {**make_record(), "study": study, "profile": profile}
    with pytest.raises(RecordError, match="not allowed"):
        store.write(tmp_path / "results", record)
    assert not (tmp_path / "results").exists() and not (tmp_path / "evil").exists()


def test_records_are_plain_sorted_json(tmp_path: Path):
    path = store.write(tmp_path, make_record())
    text = path.read_text()
    record = store.validate(make_record())
    assert json.loads(text) == {**record.model_dump(mode="json"), "digest": record.content_digest()}
    assert text.endswith("\n")
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_a_negative_duration_is_not_a_record():
    """Issue 30: a negative timing.wall_s was accepted and gave negative cost estimates."""
    record = make_record()
    record["timing"] = {"wall_s": -5.0}
    with pytest.raises(store.RecordError, match="wall_s"):
        store.validate(record)
