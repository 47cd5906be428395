"""Baselines are runs: the raw input and the untrained network go through spec -> train -> evaluate -> store like
any run, and their numbers equal a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import catalog, data, evaluate, models, schema, spec, train
from harness.errors import ConfigError
from tests.conftest import with_config


def smoke_run() -> spec.Run:
    return next(r for r in spec.load("loss_epochs", "smoke").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "contrastive")


def as_baseline(run: spec.Run, name: str) -> spec.Run:
    config = run.config.model_dump(mode="json")
    for path, value in catalog.BASELINES[name].items():
        *parents, leaf = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value
    return with_config(run, schema.RunConfig.model_validate(config))


def test_raw_input_metrics_equal_evaluate_on_the_flattened_arrays():
    run = as_baseline(smoke_run(), "raw_input")
    record = train.execute(run, progress=False)
    assert record.status == "ok" and record.loss_curve == [] and [m["epoch"] for m in record.metrics] == [0]
    cfg = run.config
    parts = data.run_splits(data.load("digits"), cfg.data)
    test = parts.test.images.flatten(1).numpy()
    reference = parts.train.images.flatten(1).numpy()
    common = {"knn_k": cfg.eval.knn_k, "distance": cfg.eval.distance}
    expected = evaluate.evaluate(test, parts.test.labels.numpy(), reference, parts.train.labels.numpy(),
                                 metrics=["knn_accuracy"], **common)
    expected |= evaluate.evaluate(test, parts.test.labels.numpy(), metrics=["precision_at_1", "map_at_r"], **common)
    assert {k: v for k, v in record.metrics[0].items() if k != "epoch"} == pytest.approx(expected, abs=1e-12)
    assert record.data.input_shape == [1, 8, 8]


def test_epoch_zero_metrics_equal_a_freshly_built_model_with_the_run_seed():
    run = as_baseline(smoke_run(), "untrained")
    record = train.execute(run, progress=False)
    cfg = run.config
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    import random

    random.seed(cfg.seed)
    model = models.build_model(cfg.model, (1, 8, 8)).eval()
    parts = data.run_splits(data.load("digits"), cfg.data)
    with torch.no_grad():
        test, reference = model(parts.test.images).numpy(), model(parts.train.images).numpy()
    common = {"knn_k": cfg.eval.knn_k, "distance": cfg.eval.distance}
    expected = evaluate.evaluate(test, parts.test.labels.numpy(), reference, parts.train.labels.numpy(),
                                 metrics=["knn_accuracy"], **common)
    expected |= evaluate.evaluate(test, parts.test.labels.numpy(), metrics=["precision_at_1", "map_at_r"], **common)
    assert {k: v for k, v in record.metrics[0].items() if k != "epoch"} == pytest.approx(expected, abs=1e-6)


def test_any_run_can_evaluate_after_epoch_zero_without_changing_its_training():
    run = smoke_run()
    train_cfg = run.config.train.model_copy(update={"eval_epochs": [0, *run.config.train.eval_epochs]})
    with_zero = with_config(run, run.config.model_copy(update={"train": train_cfg}))
    plain, zero = train.execute(run, progress=False), train.execute(with_zero, progress=False)
    assert [m["epoch"] for m in zero.metrics] == [0, 1, 2]
    assert zero.metrics[1:] == plain.metrics and zero.loss_curve == plain.loss_curve
    untrained = train.execute(as_baseline(run, "untrained"), progress=False)
    assert untrained.metrics[0] == zero.metrics[0]  # the untrained baseline is every run's epoch 0


def test_the_baseline_axis_expands_to_runs_and_refuses_unknown_names(experiments):
    import yaml

    path = experiments / "loss_epochs.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["baselines"]  # the axis written by hand instead of the `baselines:` shorthand
    doc["matrix"] = [{"baseline": ["raw_input", "untrained"]}, *doc["matrix"]]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    study = spec.load("loss_epochs", "smoke", experiments)
    baselines = [r for r in study.runs if "baseline" in r.axes]
    assert sorted(r.axes["baseline"] for r in baselines) == ["raw_input", "untrained"]
    raw = next(r for r in baselines if r.axes.get("baseline") == "raw_input")
    assert raw.config.model == {"name": "raw_input"} and raw.config.train.epochs == 0
    assert raw.config.train.eval_epochs == [0]
    doc["matrix"][0]["baseline"] = ["raw_pixels"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match="unknown baseline 'raw_pixels'; known: raw_input, untrained"):
        spec.load("loss_epochs", "smoke", experiments)


def test_a_model_without_parameters_cannot_be_trained():
    config = smoke_run().config.model_copy(update={"model": {"name": "raw_input"}})
    with pytest.raises(ConfigError, match="has nothing to train"):
        schema.check_components(config)


def test_every_study_declares_both_baselines_in_every_profile():
    for name in spec.list_studies():
        for profile in spec.PROFILES:
            runs = spec.load(name, profile, components=False).runs
            kinds = {r.axes["baseline"] for r in runs if "baseline" in r.axes}
            assert kinds == {"raw_input", "untrained"}, (name, profile)
            for run in runs:
                if "baseline" in run.axes:
                    assert run.config.train.epochs == 0 and "classification_accuracy" not in run.config.eval.metrics


def test_every_quick_profile_has_three_seeds_and_its_tables_compare_with_a_reference():
    # Three seeds at least, so that a 95 % interval of a paired difference has a chance of excluding zero; and
    # every table that holds trained runs beside the raw input names what its marks are relative to.
    for name in spec.list_studies():
        study = spec.load(name, "quick", components=False)
        assert len({run.config.seed for run in study.runs}) >= 3, name
        for table in study.spec.report.tables:
            if table.rows not in ("m",):  # the ArcFace grid itself: a heatmap of settings, no reference row
                assert table.compare_to is not None, (name, table.name)
