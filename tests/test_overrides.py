"""--set overrides: parsed as YAML values, applied after profile and matrix (an axis keeps its own values),
validated like the study file with the --set named in the error, part of the run_id, recorded in provenance."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import overrides, spec, store
from harness.errors import ConfigError
from tests.conftest import corrected_only


def test_values_are_read_as_yaml():
    parsed = {o.key: o.value for o in overrides.parse(
        ["train.epochs=3", "optimizer.lr=1e-3", "loss.neg_margin=0.2", "train.eval_epochs=[1, 3]", "miner=null",
         "train.channels_last=true", "model.name=resnet50"])}
    assert parsed == {"train.epochs": 3, "optimizer.lr": 0.001, "loss.neg_margin": 0.2, "train.eval_epochs": [1, 3],
                      "miner": None, "train.channels_last": True, "model.name": "resnet50"}
    assert isinstance(parsed["optimizer.lr"], float)  # 1e-3 on a command line is a number, not YAML 1.1's text


@pytest.mark.parametrize("texts, expected", [
    (["train.epochs"], "expected key=value"),
    (["=3"], "expected key=value"),
    (["train..epochs=3"], "expected key=value"),
    (["seed=4"], "seeds come from the study's `seeds:` list"),
    (["train.init=0123456789abcdef"], "set by a study's `chains:`"),
    (["train.eval_epochs=[1"], "YAML syntax error"),
    (["train.epochs=3", "train.epochs=4"], "given twice"),
    (["loss=null", "loss.margin=0.1"], "overlaps"),
])
def test_malformed_overrides_are_one_line(texts, expected):
    with pytest.raises(ConfigError, match="--set") as caught:
        overrides.parse(texts)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_an_override_changes_the_trained_runs_and_leaves_the_axes_that_set_it():
    plain = spec.load("loss_epochs", "smoke", components=False)
    changed = spec.load("loss_epochs", "smoke", components=False,
                        overrides=overrides.parse(["train.epochs=3"]))
    assert len(changed.runs) == len(plain.runs)
    before = {tuple(sorted(r.axes.items())): r for r in plain.runs}
    for run in changed.runs:
        old = before[tuple(sorted(run.axes.items()))]
        if run.axes.get("protocol") == "corrected":  # epochs come from the study's config: overridden
            assert run.config.train.epochs == 3 and run.config.train.eval_epochs == [1, 2, 3]
            assert run.overrides == {"train.epochs": 3, "train.eval_epochs": [1, 2, 3]}
            assert run.run_id != old.run_id
        else:  # a budget axis and the baselines set train.epochs in their cells: they keep it
            assert run.config.train.epochs == old.config.train.epochs and not run.overrides
    baselines = [r for r in changed.runs if "baseline" in r.axes]
    assert baselines and all(r.run_id == before[tuple(sorted(r.axes.items()))].run_id for r in baselines)


def test_a_component_override_skips_cells_that_put_another_component_there():
    study = spec.load("cub_cars", "smoke", components=False, overrides=overrides.parse(["loss.neg_margin=0.3"]))
    for run in study.runs:
        if run.config.loss["name"] == "contrastive" and "margin" not in run.axes:
            assert run.config.loss["neg_margin"] == 0.3 and run.overrides == {"loss.neg_margin": 0.3}
        else:  # triplet and proxy cells, and the margin axis's own values
            assert "loss.neg_margin" not in run.overrides


@pytest.mark.parametrize("texts, expected", [
    (["train.epoch=3"], "--set train.epoch=3: unknown key 'train.epoch' (did you mean 'epochs'?); allowed: epochs,"),
    (["train.precision=fp16"], "--set train.precision=fp16: train.precision: input should be 'fp32' or 'bf16'"),
    (["train.epochs=abc"], "--set train.epochs=abc: train.epochs: input should be a valid integer"),
    (["loss.margin=0.2"], "--set loss.margin=0.2: loss: unknown argument 'margin' for loss 'contrastive'"),
    (["train.batch_size=0"], "--set train.batch_size=0: train.batch_size: input should be greater than or equal to 1"),
])
def test_invalid_overrides_fail_like_the_study_file_and_name_the_set(texts, expected):
    with pytest.raises(ConfigError) as caught:
        spec.load("cub_cars", "smoke", overrides=overrides.parse(texts))
    assert str(caught.value).startswith(expected), str(caught.value)


def test_an_override_that_no_run_takes_is_refused(experiments):
    doc = {"study": "lrs", "title": "t", "question": "q", "seeds": [0],
           "config": {"data": {"dataset": "digits"}},
           "matrix": {"lr": {"path": "optimizer.lr", "values": [0.1, 0.01]}},
           "profiles": {p: {"description": p} for p in spec.PROFILES}}
    (experiments / "lrs.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"--set optimizer.lr=0.5: every run of lrs/smoke sets this key through"):
        spec.load("lrs", "smoke", experiments, overrides=overrides.parse(["optimizer.lr=0.5"]))


def test_an_override_that_merges_two_cells_names_itself(experiments):
    doc = {"study": "lrs", "title": "t", "question": "q", "seeds": [0],
           "config": {"data": {"dataset": "digits"}},
           # the axis puts the study's own component (adam) there, so --set optimizer.lr reaches both cells
           "matrix": {"opt": [{"label": "slow", "set": {"optimizer": {"name": "adam", "lr": 0.1}}},
                              {"label": "fast", "set": {"optimizer": {"name": "adam", "lr": 0.2}}}]},
           "profiles": {p: {"description": p} for p in spec.PROFILES}}
    (experiments / "lrs.yaml").write_text(yaml.safe_dump(doc))
    spec.load("lrs", "smoke", experiments, components=False)
    with pytest.raises(ConfigError, match="after --set optimizer.lr the two cells are one run"):
        spec.load("lrs", "smoke", experiments, components=False, overrides=overrides.parse(["optimizer.lr=0.1"]))


@pytest.mark.slow
def test_overrides_reach_the_record_and_its_provenance(tmp_path: Path, run_cli, experiments, monkeypatch):
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    path = experiments / "loss_epochs.yaml"
    path.write_text(yaml.safe_dump(corrected_only(yaml.safe_load(path.read_text()), ("nca",))))
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path, "--no-progress",
                           "--set", "train.epochs=1", "--set", "optimizer.lr=2e-3")
    assert code == 0, err
    scan = store.scan(tmp_path, "loss_epochs", "smoke")
    assert len(scan.ok) == 3 and not scan.failed  # nca and the two baselines
    trained = [r for r in scan.ok.values() if "loss" in r.axes]
    assert len(trained) == 1
    record = trained[0]
    assert record.provenance.overrides == {"train.epochs": 1, "train.eval_epochs": [1], "optimizer.lr": 0.002}
    assert record.config["train"]["epochs"] == 1 and record.config["optimizer"]["lr"] == 0.002
    assert [m["epoch"] for m in record.metrics] == [1]
    assert "--set" in record.provenance.command and record.intact()
    # Baselines train nothing: the epoch override does not reach them, the learning rate does.
    for baseline in (r for r in scan.ok.values() if "baseline" in r.axes):
        assert baseline.provenance.overrides == {"optimizer.lr": 0.002} and baseline.intact()
    # The overridden run is not the study's declared run: a plain launch still has it to do.
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path, "--dry-run")
    assert code == 0 and "3 to run" in err


def test_an_invalid_override_writes_nothing(tmp_path: Path, run_cli):
    code, out, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path / "r",
                             "--set", "train.epochs=-1")
    assert code == 2 and out == ""
    assert err.startswith("error: --set train.epochs=-1: train.epochs: input should be greater than or equal to 0")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_records_written_before_overrides_existed_stay_intact(tmp_path: Path):
    from tests.conftest import REPO, fake_record

    committed = sorted((REPO / "results" / "loss_epochs" / "quick").glob("*.json"))[:5]
    assert committed
    for path in committed:
        assert '"overrides"' not in path.read_text()  # written before the field existed
        record = store.read(path)
        assert record.provenance.overrides is None and record.intact()
    record = store.read(store.write(tmp_path, fake_record()))
    assert record.provenance.overrides is None and record.intact()
    edited = record.model_copy(update={"provenance": record.provenance.model_copy(
        update={"overrides": {"train.epochs": 3}})})
    assert not edited.intact()  # an override added by hand is an edit like any other


def test_a_run_made_with_set_is_found_by_status_and_verify_given_the_same_set(tmp_path, run_cli):
    """Issue 30: such a record was called 'from an older version of the matrix' and could not be verified."""
    results = tmp_path / "results"
    sets = ["--set", "train.epochs=1"]
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                           "--shard", "1/17", *sets)
    assert code == 0, err
    _, out, _ = run_cli("status", "loss_epochs", "--profile", "smoke", "--results", results)
    assert "1 records of runs made with --set (give the same --set" in out and "older version" not in out
    _, out, _ = run_cli("status", "loss_epochs", "--profile", "smoke", "--results", results, *sets)
    assert "loss_epochs/smoke: 1 done" in out
    code, out, err = run_cli("verify", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                             *sets)
    assert code == 0 and ": VERIFIED" in out, out + err
