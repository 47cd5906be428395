"""Hostile and broken input, table-driven: each case is one clear line and a non-zero exit, and nothing that was
already in the results folder is changed or lost (run-level failures become failed records instead)."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import fake_record
from harness import spec, store
from harness.data import idx

GOOD_RECORD = fake_record()


def yaml_edit(change: Callable[[dict], None]) -> Callable[[Path, Path], list[str]]:
    def setup(experiments: Path, tmp: Path) -> list[str]:
        path = experiments / "loss_epochs.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return ["run", "loss_epochs", "--profile", "smoke"]
    return setup


def text_edit(old: str, new: str) -> Callable[[Path, Path], list[str]]:
    def setup(experiments: Path, tmp: Path) -> list[str]:
        path = experiments / "loss_epochs.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
        return ["run", "loss_epochs", "--profile", "smoke"]
    return setup


def args(*argv: str) -> Callable[[Path, Path], list[str]]:
    return lambda experiments, tmp: list(argv)


def smoke_loss(**changes) -> Callable[[dict], None]:
    return lambda d: d["matrix"]["loss"][0]["set"]["loss"].update(changes)


def mnist_files(tamper: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    """A data root with MNIST's four archives in torchvision's layout, one of them damaged."""
    def setup(experiments: Path, tmp: Path) -> list[str]:
        raw = tmp / "data" / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name, shape in (("train-images-idx3-ubyte", (20, 28, 28)), ("train-labels-idx1-ubyte", (20,)),
                            ("t10k-images-idx3-ubyte", (10, 28, 28)), ("t10k-labels-idx1-ubyte", (10,))):
            content = bytes([0, 0, 8, len(shape)]) + np.asarray(shape, ">i4").tobytes() + bytes(int(np.prod(shape)))
            (raw / f"{name}.gz").write_bytes(gzip.compress(content))
        tamper(raw)
        text_edit("dataset: digits", "dataset: mnist")(experiments, tmp)
        return ["run", "loss_epochs", "--profile", "smoke", "--data", str(tmp / "data")]
    return setup


CASES = [
    ("yaml syntax error", text_edit("seeds: [0, 1, 2]", "seeds: [0, 1, 2"), "YAML syntax error"),
    ("yaml that is a list", lambda e, t: ((e / "loss_epochs.yaml").write_text("- 1\n- 2\n"),
                                           ["run", "loss_epochs"])[1], "expected a mapping"),
    ("unknown study", args("run", "loss_epoch"), "did you mean 'loss_epochs'"),
    ("study name escaping results/", args("run", "../loss_epochs"), "unknown study '../loss_epochs'"),
    ("unknown profile", args("run", "loss_epochs", "--profile", "quik"), "did you mean 'quick'"),
    ("unknown loss", yaml_edit(smoke_loss(name="ncaa")), "unknown loss 'ncaa' (did you mean 'nca'?)"),
    ("unknown loss argument", yaml_edit(smoke_loss(softmax_scal=1)), "did you mean 'softmax_scale'"),
    ("unknown miner", yaml_edit(lambda d: d["matrix"]["loss"][1]["set"]["miner"].update(name="triplet_margn")),
     "unknown miner 'triplet_margn' (did you mean 'triplet_margin'?)"),
    ("unknown distance", yaml_edit(smoke_loss(distance={"name": "cosin"})), "did you mean 'cosine'"),
    ("unknown dataset", text_edit("dataset: digits", "dataset: digit"), "did you mean 'digits'"),
    ("unknown model", yaml_edit(lambda d: d["config"]["model"].update(name="thesis_convne")),
     "did you mean 'thesis_convnet'"),
    ("unknown metric", yaml_edit(lambda d: d["config"]["eval"].update(metrics=["map_at_rr"])),
     "did you mean 'map_at_r'"),
    ("unknown optimizer", yaml_edit(lambda d: d["config"]["optimizer"].update(name="adamm")), "did you mean 'adam'"),
    ("wrong type", yaml_edit(lambda d: d["profiles"]["smoke"]["config"]["train"].update(batch_size="32")),
     "valid integer"),
    ("number written as text", text_edit("lr: 1.0e-3", "lr: 1e-3"), "write 1.0e-3"),
    ("negative epochs", yaml_edit(lambda d: d["profiles"]["smoke"]["config"]["train"].update(
        epochs=-2, eval_epochs=[1])), "greater than 0"),
    ("zero batch", yaml_edit(lambda d: d["profiles"]["smoke"]["config"]["train"].update(batch_size=0)),
     "greater than or equal to 1"),
    ("empty matrix", yaml_edit(lambda d: d["matrix"].update(loss=[])), "empty axis"),
    ("empty seeds", yaml_edit(lambda d: d["profiles"]["smoke"].update(seeds=[])), "seeds: empty list"),
    ("typo in a top-level key", yaml_edit(lambda d: d.update(matrx=d["matrix"])), "did you mean 'matrix'"),
    ("shard 0/0", args("run", "loss_epochs", "--profile", "smoke", "--shard", "0/0"), "expected i/n"),
    ("shard 3/2", args("run", "loss_epochs", "--profile", "smoke", "--shard", "3/2"), "expected i/n"),
    ("dataset files missing", mnist_files(lambda raw: (raw / "t10k-labels-idx1-ubyte.gz").unlink()),
     "mnist not found: need train-images-idx3-ubyte.gz"),
    ("dataset file truncated", mnist_files(lambda raw: (raw / "train-images-idx3-ubyte.gz").write_bytes(
        (raw / "train-images-idx3-ubyte.gz").read_bytes()[:50])), "truncated"),
    ("dataset checksum mismatch", mnist_files(lambda raw: None), "fails its checksum"),
    ("evaluate a missing file", args("evaluate", "no-such.npz"), "no such file"),
]


@pytest.fixture
def results_with_a_record(tmp_path: Path) -> tuple[Path, dict[Path, bytes]]:
    results = tmp_path / "results"
    store.write(results, GOOD_RECORD)
    return results, {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}


@pytest.mark.parametrize("what,setup,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_nonzero_exit_and_loses_nothing(what, setup, words, experiments, tmp_path,
                                                              results_with_a_record, run_cli, monkeypatch):
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    monkeypatch.setattr(idx, "_download", lambda *a: None)  # no network here; never wait for one in tests
    results, before = results_with_a_record
    argv = setup(experiments, tmp_path)
    if argv[0] in ("run", "status", "verify", "render"):
        argv += ["--results", str(results)]
    code, out, err = run_cli(*argv)
    assert code != 0, (what, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert words in err, (what, err)
    after = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert after == before, f"{what}: the results folder changed"


def test_the_table_is_big_enough():
    assert len(CASES) >= 20


def test_nan_loss_mid_run_is_a_failed_record_and_the_matrix_goes_on(experiments, tmp_path, run_cli, monkeypatch):
    # A learning rate this large drives the NCA run's loss to NaN; the other runs must still be trained.
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    yaml_edit(lambda d: d["matrix"]["loss"][0]["set"].update(
        {"optimizer": {"name": "sgd", "lr": 1.0e30}}))(experiments, tmp_path)
    results = tmp_path / "results"
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 0, err
    scan = store.scan(results, "loss_epochs", "smoke")
    assert len(scan.failed) == 1 and len(scan.ok) == 4
    (failed,) = scan.failed.values()
    assert failed.axes == {"loss": "nca"} and "loss became nan" in failed.error.message
    code, out, _ = run_cli("status", "loss_epochs", "--profile", "smoke", "--results", results)
    assert "4 done, 1 failed, 0 missing" in out and "loss became nan" in out


def test_a_corrupt_record_is_reported_and_never_taken_as_finished(tmp_path, run_cli):
    results = tmp_path / "results"
    (run,) = [r for r in spec.load("loss_epochs", "smoke").runs if r.axes["loss"] == "nca"]
    path = store.record_path(results, "loss_epochs", "smoke", run.run_id)
    path.parent.mkdir(parents=True)
    path.write_text('{"run_id": "%s", "status": "ok", "metr' % run.run_id)
    code, out, _ = run_cli("status", "loss_epochs", "--profile", "smoke", "--results", results)
    assert code == 0 and "1 corrupt" in out and str(path) in out and "0 done" in out
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                           "--shard", "1/5")
    assert code == 0 and f"warning: {path}" in err
    assert store.read(path).status == "ok" and json.loads(path.read_text())["metrics"]


def test_checkpoints_are_loaded_weights_only(tmp_path):
    """A checkpoint that would run code when unpickled is refused, not executed."""
    import pickle

    from harness import checkpoint

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    path = tmp_path / ".evil.ckpt"
    path.write_bytes(pickle.dumps({"run_id": "x", "payload": Evil()}, protocol=2))
    assert checkpoint.load(path, "x") is None
    assert (tmp_path / "victim").exists()
