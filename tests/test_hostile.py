"""Hostile and broken input, table-driven: each case is one clear line and a non-zero exit, and nothing that was
already in the results folder is changed or lost (run-level failures become failed records instead)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import corrected_only, fake_record
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


def nca(d: dict) -> dict:
    """The NCA entry of loss_epochs's loss axis (one list, shared by the corrected and the original's block)."""
    return next(v for v in d["matrix"][0]["loss"] if v["label"] == "nca")


def smoke_loss(**changes) -> Callable[[dict], None]:
    return lambda d: nca(d)["set"]["loss"].update(changes)


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


def npz_file(write: Callable[[Path], None], *extra: str) -> Callable[[Path, Path], list[str]]:
    def setup(experiments: Path, tmp: Path) -> list[str]:
        path = tmp / "embeddings.npz"
        write(path)
        written = path if path.exists() else tmp / "embeddings.npz.npy"  # np.save adds .npy
        return ["evaluate", str(written), *extra]
    return setup


def good_npz(path: Path) -> None:
    np.savez(path, query=np.eye(4, dtype=np.float32), query_labels=np.array([0, 0, 1, 1]))


def huge_header(path: Path) -> None:
    """A tiny archive whose query array declares 10^12 float32 values (4 TB)."""
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1_000_000, 1_000_000)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("query.npy", header.getvalue() + b"\0" * 64)
        archive.writestr("query_labels.npy", header.getvalue())


def raw_yaml(text: str) -> Callable[[Path, Path], list[str]]:
    def setup(experiments: Path, tmp: Path) -> list[str]:
        (experiments / "loss_epochs.yaml").write_text(text)
        return ["status", "loss_epochs"]
    return setup


# 9 levels of 10 aliases each: 511 bytes that stand for 10^9 elements once expanded.
ALIAS_BOMB = "study: loss_epochs\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))


def with_env(**env: str) -> Callable[[Path, Path], list[str]]:
    """Set by the test before the CLI runs (see ENV below)."""
    def setup(experiments: Path, tmp: Path) -> list[str]:
        return ["run", "loss_epochs", "--profile", "smoke", "--env", json.dumps(env)]
    return setup


def symlinked_lock(experiments: Path, tmp: Path) -> list[str]:
    """A link placed at a run's lock name in a shared results folder must not write through to its target."""
    victim = tmp / "victim.txt"
    victim.write_text("precious")
    (run,) = [r for r in spec.load("loss_epochs", "smoke", experiments).runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "nca"]
    folder = tmp / "shared"
    folder.mkdir()
    (folder / "loss_epochs" / "smoke").mkdir(parents=True)
    (folder / "loss_epochs" / "smoke" / f".{run.run_id}.lock").symlink_to(victim)
    return ["run", "loss_epochs", "--profile", "smoke", "--shard", "4/7", "--results", str(folder)]  # 4/7: nca's corrected run alone


CASES = [
    ("yaml syntax error", text_edit("seeds: [0, 1, 2]", "seeds: [0, 1, 2"), "YAML syntax error"),
    ("yaml that is a list", lambda e, t: ((e / "loss_epochs.yaml").write_text("- 1\n- 2\n"),
                                           ["run", "loss_epochs"])[1], "expected a mapping"),
    ("unknown study", args("run", "loss_epoch"), "did you mean 'loss_epochs'"),
    ("study name escaping results/", args("run", "../loss_epochs"), "unknown study '../loss_epochs'"),
    ("unknown profile", args("run", "loss_epochs", "--profile", "quik"), "did you mean 'quick'"),
    ("unknown loss", yaml_edit(smoke_loss(name="ncaa")), "unknown loss 'ncaa' (did you mean 'nca'?)"),
    ("unknown loss argument", yaml_edit(smoke_loss(softmax_scal=1)), "did you mean 'softmax_scale'"),
    ("unknown miner", yaml_edit(lambda d: d["matrix"][0]["loss"][1]["set"]["miner"].update(name="triplet_margn")),
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
        epochs=-2, eval_epochs=[1])), "greater than or equal to 0"),
    ("zero batch", yaml_edit(lambda d: d["profiles"]["smoke"]["config"]["train"].update(batch_size=0)),
     "greater than or equal to 1"),
    ("empty matrix", yaml_edit(lambda d: d["matrix"][0].update(loss=[])), "empty axis"),
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
    # Issue 16, item 10 and neighbours: each was a traceback, a hang or a silent misuse before.
    ("evaluate a .npy file", npz_file(lambda p: np.save(p, np.zeros((4, 2)))), "a single .npy array"),
    ("evaluate an npz claiming 10^12 floats", npz_file(huge_header), "more than half this machine's memory"),
    ("evaluate an object array", npz_file(lambda p: np.savez(p, query=np.array([{}, {}], dtype=object),
                                                            query_labels=np.arange(2))), "holds object values"),
    ("evaluate text that is not an archive", npz_file(lambda p: p.write_text("hello")), "not a .npz archive"),
    ("evaluate a folder", lambda e, t: ["evaluate", str(t)], "not a file"),
    ("evaluate --seed -1", npz_file(good_npz, "--seed", "-1"), "--seed -1: expected an integer from 0"),
    ("shard with 5,000 digits", args("run", "loss_epochs", "--profile", "smoke", "--shard", "1" * 5000 + "/2"),
     "expected i/n"),
    ("--results is a file", lambda e, t: ((t / "file").write_text("x"),
                                          ["run", "loss_epochs", "--profile", "smoke", "--results", str(t / "file")])[1],
     "exists and is not a folder"),
    ("--results below a file", lambda e, t: ((t / "file").write_text("x"), ["run", "loss_epochs", "--profile",
                                             "smoke", "--results", str(t / "file" / "r")])[1], "is not a folder"),
    ("a data file that is a folder", mnist_files(lambda raw: ((raw / "train-images-idx3-ubyte.gz").unlink(),
                                                              (raw / "train-images-idx3-ubyte.gz").mkdir())),
     "cannot read"),
    ("render into a paper folder below a file", lambda e, t: ((t / "file").write_text("x"), [
        "render", "--paper", str(t / "file" / "paper"), "--no-pdf"])[1], "cannot create the paper's main.tex there"),
    ("YAML alias bomb", raw_yaml(ALIAS_BOMB), "expands to more than"),
    ("recursive YAML alias", raw_yaml("study: loss_epochs\nx: &a [1, *a]\n"), "recursive alias"),
    ("a 3,000-deep list", raw_yaml("study: loss_epochs\nx: " + "[" * 3000 + "]" * 3000 + "\n"),
     "nested more than"),
    ("a file of 2 MB", raw_yaml("# " + "x" * 2_000_000 + "\n"), "an experiment file is at most"),
    ("a list where a name is expected", yaml_edit(smoke_loss(name=["nca"])), "loss.name: unknown loss"),
    ("a list as a matrix label", yaml_edit(lambda d: nca(d).update(label=["nca"])),
     "a label must be text or a number"),
    ("a list as the model", yaml_edit(lambda d: d["config"].update(model=["thesis_convnet"])),
     "model: input should be a valid dictionary"),
    ("verify --tolerance nan", args("verify", "loss_epochs", "--profile", "smoke", "--tolerance", "nan"),
     "expected a finite number >= 0"),
    ("verify --tolerance -1", args("verify", "loss_epochs", "--profile", "smoke", "--tolerance", "-1"),
     "expected a finite number >= 0"),
    ("verify --sample 0", args("verify", "loss_epochs", "--profile", "smoke", "--sample", "0"),
     "expected a number of runs >= 1"),
    ("a negative seed", yaml_edit(lambda d: d["profiles"]["smoke"].update(seeds=[-1])),
     "greater than or equal to 0"),
    ("a seed of 2**64", yaml_edit(lambda d: d["profiles"]["smoke"].update(seeds=[2**64])), "less than"),
    ("HARNESS_WORKERS=four", with_env(HARNESS_WORKERS="four"), "HARNESS_WORKERS='four': expected a whole number"),
    ("ACCELERATE_MIXED_PRECISION=bf16", with_env(ACCELERATE_MIXED_PRECISION="bf16"), "mixed precision bf16"),
    ("ACCELERATE_GRADIENT_ACCUMULATION_STEPS=2", with_env(ACCELERATE_GRADIENT_ACCUMULATION_STEPS="2"),
     "gradient accumulation over 2 steps"),
    ("an unknown key in execution", yaml_edit(lambda d: d["profiles"]["smoke"].update(
        execution={"eval_batch_sise": 12})), "did you mean 'eval_batch_size'"),
    ("m not dividing the batch", yaml_edit(lambda d: d["profiles"]["smoke"]["config"]["train"].update(
        sampler={"name": "m_per_class", "m": 5})), "not a multiple of m = 5"),
    ("a lock that is a symbolic link", symlinked_lock, "is a symbolic link, not a lock file"),
    # Issue 30, item 3: NaN, +inf, -inf and null all hashed as null, so they shared one run_id.
    *[(f"--set optimizer.lr={v}", args("run", "loss_epochs", "--profile", "smoke", "--set", f"optimizer.lr={v}"),
       f"optimizer.lr: {w} is not a finite number") for v, w in ((".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan"))],
    ("lr: .inf in a study file", text_edit("lr: 1.0e-3", "lr: .inf"), "optimizer.lr: inf is not a finite number"),
    # Issue 30, item 10: --set values were read without the limits study files are read with.
    ("--set a recursive alias", args("run", "loss_epochs", "--profile", "smoke", "--set", "loss.foo=&a [*a]"),
     "--set loss.foo=&a [*a]: the value: line 1: a YAML alias refers to a node that contains it"),
    ("--set an alias bomb", args("run", "loss_epochs", "--profile", "smoke", "--set", "loss.foo=" + ALIAS_BOMB),
     "expands to more than"),
    ("--set a 5,000-digit integer", args("run", "loss_epochs", "--profile", "smoke", "--set",
                                         "train.epochs=" + "1" * 5000), "(5013 characters): the value: Exceeds"),
    ("evaluate --seed 2**64", npz_file(good_npz, "--seed", str(2**64)), "--seed 18446744073709551616: expected"),
    ("--set train={init: ...}", args("run", "loss_epochs", "--profile", "smoke", "--set",
                                     "train={init: 0123456789abcdef, epochs: 1}"),
     "sets train.init, which cannot be overridden; train.init is set by a study's `chains:`"),
    # Found in this round's own tries (see the session note): each was a traceback or a silent pass.
    ("fetch --data is a file", lambda e, t: ((t / "file").write_text("x"), ["fetch", "mnist", "--data",
                                                                           str(t / "file")])[1],
     "cannot make the folder the file goes in"),
    ("check --paper where there is no paper", lambda e, t: ["check", "--paper", str(t / "nopaper")],
     "no main.tex there"),
    ("evaluate NaN labels", npz_file(lambda p: np.savez(p, query=np.random.rand(10, 3).astype("float32"),
                                                        query_labels=np.full(10, np.nan))),
     "labels contain NaN or infinite values"),
    ("lr: null in a study file", text_edit("lr: 1.0e-3", "lr: null"),
     "optimizer.lr: null where optimizer 'adam' takes a number like 0.001"),
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
    if "--env" in argv:  # environment variables the case sets (not a CLI option)
        at = argv.index("--env")
        for key, value in json.loads(argv[at + 1]).items():
            monkeypatch.setenv(key, value)
        del argv[at:at + 2]
    if argv[0] in ("run", "status", "verify", "render") and "--results" not in argv:
        argv += ["--results", str(results)]
    code, out, err = run_cli(*argv)
    assert code != 0, (what, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert words in err, (what, err)
    after = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert after == before, f"{what}: the results folder changed"
    if (tmp_path / "victim.txt").exists():
        assert (tmp_path / "victim.txt").read_text() == "precious"
        assert not list((tmp_path / "shared").rglob("*.json"))


def test_the_table_is_big_enough():
    assert len(CASES) >= 50


def test_nan_loss_mid_run_is_a_failed_record_and_the_matrix_goes_on(experiments, tmp_path, run_cli, monkeypatch):
    # A learning rate this large drives the NCA run's loss to NaN; the other runs must still be trained.
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    def blow_up(d: dict) -> None:  # the corrected runs only (no chain of the original's protocol)
        nca(corrected_only(d))["set"].update({"optimizer": {"name": "sgd", "lr": 1.0e30}})
    yaml_edit(blow_up)(experiments, tmp_path)
    results = tmp_path / "results"
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 0, err
    scan = store.scan(results, "loss_epochs", "smoke")
    assert len(scan.failed) == 1 and len(scan.ok) == 6  # 4 other losses and the 2 baselines
    (failed,) = scan.failed.values()
    assert failed.axes == {"loss": "nca", "protocol": "corrected"} and "loss became nan" in failed.error.message
    code, out, _ = run_cli("status", "loss_epochs", "--profile", "smoke", "--results", results)
    assert "6 done, 1 failed, 0 missing" in out and "loss became nan" in out


def test_a_corrupt_record_is_reported_and_never_taken_as_finished(tmp_path, run_cli):
    results = tmp_path / "results"
    (run,) = [r for r in spec.load("loss_epochs", "smoke").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "nca"]
    path = store.record_path(results, "loss_epochs", "smoke", run.run_id)
    path.parent.mkdir(parents=True)
    path.write_text('{"run_id": "%s", "status": "ok", "metr' % run.run_id)
    code, out, _ = run_cli("status", "loss_epochs", "--profile", "smoke", "--results", results)
    assert code == 0 and "1 corrupt" in out and str(path) in out and "0 done" in out
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                           "--shard", "4/7")  # nca's corrected run alone
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


def test_a_study_folder_this_user_cannot_write_is_one_line(tmp_path, run_cli, monkeypatch):
    """Issue 30, item 11: a writable --results holding an unwritable study folder gave a PermissionError traceback
    from the lock (faked here: root writes anywhere)."""
    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store, "_open_lock", refused)
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path / "r", "--no-progress",
                           "--shard", "1/17")
    assert code == 2 and err.count("\n") <= 3 and "Traceback" not in err, err
    assert "not writable by this user (each run's lock and record go there)" in err.splitlines()[-1]


@pytest.mark.parametrize("module", ["this", "beside_the_study"])
def test_a_component_path_outside_installed_packages_is_refused_before_it_runs(module, experiments, tmp_path,
                                                                                run_cli, monkeypatch):
    """Issue 30, item 9: `loss: {name: this.Nope}` printed the Zen of Python on `harness list`; a module beside
    the study ran its top-level code."""
    (experiments / "beside_the_study.py").write_text(
        f"open({str(tmp_path / 'ran')!r}, 'w').write('code ran')\nclass Nope: pass\n")
    monkeypatch.syspath_prepend(str(experiments))  # as if it sat in the working folder
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    path = experiments / "loss_epochs.yaml"
    doc = yaml.safe_load(path.read_text())
    smoke_loss(name=f"{module}.Nope")(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path / "r")
    assert code == 2 and err.count("\n") == 1, err
    assert f"'{module}' is not an installed package; a component named by import path must come from one" in err
    assert "Zen" not in out and not (tmp_path / "ran").exists()
