"""train on image files and the options issue-6 studies use: warm-up, N x K batches, step schedule, bf16,
channels-last, no-positive-pair failures; all on the generated CUB sample or on digits."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from accelerate import Accelerator

from tests.conftest import with_config
from harness import data, schema, spec, train
from harness.errors import ConfigError


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict[tuple[str, int], spec.Run]:
    return {(r.axes["dataset"], r.axes["batch"]): r for r in spec.load("cub_cars", "smoke").runs if "batch" in r.axes}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def with_train(run: spec.Run, **changes) -> spec.Run:
    config = run.config.model_copy(update={"train": run.config.train.model_copy(update=changes)})
    return with_config(run, config)


def test_image_run_is_bit_identical_and_warm_up_freezes_the_backbone(smoke, data_root):
    run = smoke[("cub200_sample", 6)]
    first = train.execute(run, data_root=data_root, progress=False)
    second = train.execute(run, data_root=data_root, progress=False)
    assert first.status == "ok", first.error
    assert first.metrics == second.metrics and first.loss_curve == second.loss_curve
    assert first.data.train_size == 12 and first.data.test_size == 12

    trainer = train.Trainer(run, Accelerator(cpu=True), data.load("cub200_sample", data_root))
    model = trainer.accelerator.unwrap_model(trainer.model)
    backbone = [p.detach().clone() for p in model.backbone_parameters()]
    head = [p.detach().clone() for p in model.head_parameters()]
    trainer.train_epoch(1, [])  # warmup_epochs: 1
    assert all(torch.equal(a, b) for a, b in zip(backbone, model.backbone_parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(head, model.head_parameters()))
    trainer.train_epoch(2, [])
    moved = [not torch.equal(a, b) for a, b in zip(backbone, model.backbone_parameters())]
    assert any(moved)
    frozen_bn = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen_bn and not any(p.requires_grad for p in frozen_bn)  # warm-up does not unfreeze BatchNorm


def test_a_run_without_any_positive_pair_fails_with_that_reason(smoke, data_root):
    record = train.execute(smoke[("cars196_sample", 1)], data_root=data_root, progress=False)
    assert record.status == "failed"
    assert "no batch of epoch 1 had a positive pair" in record.error.message


@pytest.fixture(scope="module")
def digits_run() -> spec.Run:
    return next(r for r in spec.load("loss_epochs", "smoke").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "contrastive")


def test_n_x_k_batches_hold_n_classes_of_k_items(digits_run):
    run = with_train(digits_run, sampler={"name": "m_per_class", "m": 4}, batch_size=32)
    trainer = train.Trainer(run, Accelerator(cpu=True), data.load("digits"))
    batches = list(trainer.pipeline.batches(1))
    assert len(batches) >= 5
    for _, labels in batches:
        counts = torch.bincount(labels)
        assert len(labels) == 32 and sorted(counts[counts > 0].tolist()) == [4] * 8
    again = train.Trainer(run, Accelerator(cpu=True), data.load("digits"))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again.pipeline.batches(1)))


def test_m_must_divide_the_batch_and_fails_at_load_time(experiments):
    """Checked with the spec, before any compute: not at the first batch of a run halfway through a matrix."""
    path = experiments / "nk_sampling.yaml"
    text = path.read_text()
    path.write_text(text.replace("{name: m_per_class, m: 3}", "{name: m_per_class, m: 5}"))
    with pytest.raises(ConfigError, match="batch_size 6 is not a multiple of m = 5"):
        spec.load("nk_sampling", "smoke", experiments)


def test_m_per_class_draws_from_the_run_generator_alone(digits_run):
    """numpy's global generator neither moves the batches nor is moved by them."""
    run = with_train(digits_run, sampler={"name": "m_per_class", "m": 4}, batch_size=32)
    trainer = train.Trainer(run, Accelerator(cpu=True), data.load("digits"))
    np.random.seed(1)
    before = np.random.get_state()[1].copy()
    first = next(iter(trainer.pipeline.batches(1)))[1]
    assert (np.random.get_state()[1] == before).all()
    np.random.seed(2)
    again = train.Trainer(run, Accelerator(cpu=True), data.load("digits"))
    assert torch.equal(next(iter(again.pipeline.batches(1)))[1], first)


def test_too_few_classes_for_the_batch_is_one_line(digits_run):
    run = with_train(digits_run, sampler={"name": "m_per_class", "m": 2}, batch_size=32)
    trainer = train.Trainer(run, Accelerator(cpu=True), data.load("digits"))
    with pytest.raises(ConfigError, match="cannot fill a batch of 32"):
        next(iter(trainer.pipeline.batches(1)))


def test_step_schedule_divides_the_learning_rate_and_bf16_runs(digits_run):
    run = with_train(digits_run, lr_schedule={"name": "step", "step_size": 1, "gamma": 0.1}, epochs=2,
                     eval_epochs=[2], precision="bf16", channels_last=True)
    trainer = train.Trainer(run, Accelerator(cpu=True), data.load("digits"))
    trainer.train_epoch(1, [])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    record = train.execute(run, progress=False)
    assert record.status == "ok" and record.config["train"]["precision"] == "bf16"
    assert record.metrics == train.execute(run, progress=False).metrics


def test_options_are_validated_on_entry(digits_run):
    base = digits_run.config.model_dump(mode="json")
    for change, message in (({"sampler": {"name": "n_per_class"}}, "did you mean 'm_per_class'"),
                            ({"lr_schedule": {"name": "step", "step": 5}}, "unknown argument 'step'"),
                            ({"warmup_epochs": 2}, "head-only epochs leave none"),
                            ({"warmup_epochs": 1}, "has no separate head")):
        config = {**base, "train": {**base["train"], **change}}
        with pytest.raises(Exception, match=message):
            schema.check_components(schema.RunConfig.model_validate(config))


def test_an_interrupted_image_run_resumes_to_the_same_record(smoke, data_root, tmp_path, monkeypatch):
    """Per-sample seeds come from (run seed, epoch), so a run restarted from its epoch-1 checkpoint draws the
    same crops and flips as one that never stopped."""
    run = smoke[("cub200_sample", 6)]
    whole = train.execute(run, data_root=data_root, progress=False)
    checkpoint = tmp_path / "run.ckpt"
    real_epoch = train.Trainer.train_epoch

    def crash_in_epoch_2(self, epoch, curve, bar=None):
        if epoch == 2:
            raise KeyboardInterrupt  # not a run failure: the process is gone, its checkpoint stays
        return real_epoch(self, epoch, curve, bar)

    monkeypatch.setattr(train.Trainer, "train_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train.execute(run, data_root=data_root, progress=False, checkpoint=checkpoint)
    assert checkpoint.exists()
    monkeypatch.setattr(train.Trainer, "train_epoch", real_epoch)
    resumed = train.execute(run, data_root=data_root, progress=False, checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 1
    assert resumed.metrics == whole.metrics and resumed.loss_curve == whole.loss_curve
