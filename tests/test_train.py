"""train: a run is a pure function of its config and seed; failures are recorded; proxies are trained."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from tests.conftest import with_config
from harness import data, spec, train
from harness.errors import HarnessError


@pytest.fixture(scope="module")
def smoke_runs() -> dict[str, spec.Run]:
    return {r.axes["loss"]: r for r in spec.load("loss_epochs", "smoke").runs
            if "loss" in r.axes and r.axes.get("protocol") != "original"}


def with_train(run: spec.Run, **changes) -> spec.Run:
    config = run.config.model_copy(update={"train": run.config.train.model_copy(update=changes)})
    return with_config(run, config)


def test_same_config_and_seed_is_bit_identical(smoke_runs):
    run = smoke_runs["triplet"]
    first = train.execute(run, progress=False)
    second = train.execute(run, progress=False)
    assert first.status == second.status == "ok"
    assert first.metrics == second.metrics
    assert first.loss_curve == second.loss_curve


def test_another_seed_gives_another_run(smoke_runs):
    run = smoke_runs["contrastive"]
    other = with_config(run, run.config.model_copy(update={"seed": 7}))
    assert train.execute(run, progress=False).loss_curve != train.execute(other, progress=False).loss_curve


def test_record_has_metrics_at_each_evaluated_epoch_and_a_loss_curve(smoke_runs):
    record = train.execute(smoke_runs["nca"], progress=False)
    assert [m["epoch"] for m in record.metrics] == [1, 2]
    assert set(record.metrics[0]) == {"epoch", "knn_accuracy", "precision_at_1", "map_at_r"}
    assert all(0.0 <= v <= 1.0 for m in record.metrics for k, v in m.items() if k != "epoch")
    steps = [p.step for p in record.loss_curve]
    assert steps == sorted(steps) and steps[-1] == 2 * math.ceil(300 / 32)
    assert record.data.model_dump() == {"train_size": 300, "test_size": 200, "num_classes": 10, "input_shape": [1, 8, 8],
                              "val_size": 0, "unseen_test_size": 0, "seen_classes": list(range(10)), "val_classes": [],
                              "normalisation": record.data.normalisation}
    for key in ("train_s", "eval_s", "wall_s", "train_images_per_s", "peak_rss_mb"):
        assert getattr(record.timing, key) > 0


def test_validation_classes_train_nowhere_and_score_as_val_metrics(smoke_runs):
    run = smoke_runs["nca"]
    config = run.config.model_copy(update={"data": run.config.data.model_copy(update={"val_classes": 2})})
    record = train.execute(with_config(run, config), progress=False)
    assert record.data.seen_classes == list(range(8)) and record.data.val_classes == [8, 9]
    assert record.data.train_size == 240 and record.data.val_size == 60 and record.data.test_size == 160
    assert {"val_precision_at_1", "val_map_at_r"} <= set(record.metrics[-1])


def test_evaluating_does_not_change_training(smoke_runs):
    """Batch order has its own generator: a run evaluated after every epoch trains exactly like one evaluated once."""
    run = smoke_runs["margin"]
    once = train.execute(with_train(run, eval_epochs=[2]), progress=False)
    every = train.execute(run, progress=False)
    assert once.loss_curve == every.loss_curve
    assert once.metrics[-1] == every.metrics[-1]


def test_proxies_are_optimised(smoke_runs):
    trainer = train.Trainer(smoke_runs["proxy_anchor"], train.Accelerator(cpu=True), data.load("digits"))
    proxies = trainer.loss_fn.proxies.detach().clone()
    assert any(p is trainer.loss_fn.proxies for group in trainer.optimizer.param_groups for p in group["params"])
    trainer.train_epoch(1, [])
    assert not torch.equal(proxies, trainer.loss_fn.proxies.detach())


def test_proxies_may_learn_at_a_multiple_of_the_learning_rate_and_the_default_leaves_runs_alone(smoke_runs):
    """train.loss_lr_multiplier: the loss's parameters in a group of their own at that multiple (the Proxy Anchor
    authors' 100x); at 1 one group holds everything, as before the option existed, and the run_id is unchanged."""
    plain = smoke_runs["proxy_anchor"]
    assert with_train(plain, loss_lr_multiplier=1.0).run_id == plain.run_id
    trainer = train.Trainer(with_train(plain, loss_lr_multiplier=100.0), train.Accelerator(cpu=True),
                            data.load("digits"))
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2 and groups[1]["params"] == [trainer.loss_fn.proxies]
    assert groups[1]["lr"] == pytest.approx(100 * groups[0]["lr"]) and groups[1]["weight_decay"] == groups[0]["weight_decay"]
    assert len(train.Trainer(plain, train.Accelerator(cpu=True), data.load("digits")).optimizer.param_groups) == 1
    proxies = trainer.loss_fn.proxies.detach().clone()
    trainer.train_epoch(1, [])
    assert not torch.equal(proxies, trainer.loss_fn.proxies.detach())
    from harness.schema import TrainConfig

    with pytest.raises(Exception, match="greater than 0"):
        TrainConfig.model_validate({**plain.config.train.model_dump(), "loss_lr_multiplier": 0.0})


def test_loss_parameters_can_stay_as_initialised_as_the_original_left_them(smoke_runs):
    run = with_train(smoke_runs["proxy_anchor"], optimize_loss=False)
    trainer = train.Trainer(run, train.Accelerator(cpu=True), data.load("digits"))
    proxies = trainer.loss_fn.proxies.detach().clone()
    weights = next(trainer.model.parameters()).detach().clone()
    assert not any(p is trainer.loss_fn.proxies for group in trainer.optimizer.param_groups for p in group["params"])
    trainer.train_epoch(1, [])
    assert torch.equal(proxies, trainer.loss_fn.proxies.detach())
    assert not torch.equal(weights, next(trainer.model.parameters()).detach())  # the network still trains


def test_each_run_builds_a_fresh_model(smoke_runs):
    accelerator = train.Accelerator(cpu=True)
    first = train.Trainer(smoke_runs["nca"], accelerator, data.load("digits"))
    first.train_epoch(1, [])
    second = train.Trainer(smoke_runs["nca"], accelerator, data.load("digits"))
    third = train.Trainer(smoke_runs["nca"], accelerator, data.load("digits"))
    for a, b in zip(second.model.parameters(), third.model.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(first.model.parameters(), second.model.parameters()))


def test_evaluation_embeddings_come_from_a_clean_eval_pass(smoke_runs):
    trainer = train.Trainer(smoke_runs["nca"], train.Accelerator(cpu=True), data.load("digits"))
    first, second = trainer.embed(trainer.parts.test), trainer.embed(trainer.parts.test)
    np.testing.assert_array_equal(first, second)  # dropout off
    assert trainer.model.training  # and back to training mode afterwards


def test_nan_loss_is_a_failed_record_not_a_crash(smoke_runs, monkeypatch):
    monkeypatch.setattr(train.Trainer, "step", lambda self, x, y: torch.tensor(float("nan")))
    record = train.execute(smoke_runs["nca"], progress=False)
    assert record.status == "failed"
    assert record.error.type == "RunFailure"
    assert record.error.message == "loss became nan at epoch 1, step 1"
    assert record.metrics == []


def test_record_carries_provenance(smoke_runs):
    record = train.execute(smoke_runs["nca"], progress=False, command=["harness", "run", "x"])
    prov = record.provenance.model_dump()
    assert prov["command"] == ["harness", "run", "x"]
    assert prov["versions"]["torch"] == torch.__version__.split("+")[0]
    assert prov["versions"]["pytorch-metric-learning"] and prov["versions"]["python"]
    assert prov["accelerate"]["num_processes"] == 1 and prov["accelerate"]["device"] == "cpu"
    assert prov["dataset"]["name"] == "digits" and len(prov["dataset"]["sha256"]["digits"]) == 64
    assert set(prov["git"]) == {"commit", "dirty"} and prov["cpu"] and prov["host"]
    # The machine's CPUs and the threads torch ran on are two facts (schema 1 wrote the thread count as cpu_count).
    assert prov["cpu_count"] == os.cpu_count() and prov["torch_threads"] == torch.get_num_threads()
    assert prov["started"] <= prov["finished"]


def test_git_state_flags_a_dirty_tree(tmp_path, monkeypatch):
    import subprocess

    from harness import provenance

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "c")
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    clean = provenance.git_state()
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_state() == {"commit": clean["commit"], "dirty": True}
    # New results are not code: writing records must not make the next run look dirty.
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}")
    assert provenance.git_state()["dirty"] is False
    # An untracked module changes what runs: it counts as a change.
    (tmp_path / "new_module.py").write_text("y = 1\n")
    assert provenance.git_state()["dirty"] is True


def test_a_copy_inside_another_repository_records_no_commit_but_its_source_hash(tmp_path, monkeypatch):
    """The outer repository's commit says nothing about the project's code: no commit rather than a wrong one,
    and the source hash follows the code whatever holds it."""
    import shutil
    import subprocess

    from harness import provenance

    real = provenance.REPO
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    project = tmp_path / "vendor" / "thesis"
    shutil.copytree(provenance.REPO / "harness", project / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(provenance.REPO / "experiments", project / "experiments")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "outer"], cwd=tmp_path,
                   check=True)
    monkeypatch.setattr(provenance, "REPO", project)
    assert provenance.git_state() == {"commit": None, "dirty": None}
    before = provenance.source_hash(project)
    assert before == provenance.source_hash(real)  # the same code, the same hash
    train_py = project / "harness" / "train.py"
    train_py.write_text(train_py.read_text() + "\n# edited\n")
    assert provenance.source_hash(project) != before


def test_hflip_flips_a_seeded_half_of_each_batch_and_stays_deterministic(smoke_runs):
    from accelerate import Accelerator

    run = smoke_runs["contrastive"]
    digits = data.load("digits")
    plain = train.Trainer(run, Accelerator(cpu=True), digits)
    flipped = train.Trainer(with_train(run, augment=["hflip"]), Accelerator(cpu=True), digits)
    (a, labels_a), (b, labels_b) = next(iter(plain.pipeline.batches(1))), next(iter(flipped.pipeline.batches(1)))
    assert torch.equal(labels_a, labels_b)  # the batch order is drawn before any flip
    same = (a == b).flatten(1).all(dim=1)
    mirrored = (a.flip(-1) == b).flatten(1).all(dim=1)
    assert bool((same | mirrored).all())
    assert 0 < int((mirrored & ~same).sum()) < len(a)
    again = train.Trainer(with_train(run, augment=["hflip"]), Accelerator(cpu=True), digits)
    assert torch.equal(next(iter(again.pipeline.batches(1)))[0], b)


def test_a_chained_run_equals_the_same_epochs_in_one_run(smoke_runs, tmp_path):
    """One epoch, then two more continuing from its final state, is three epochs in one run: bit for bit."""
    run = smoke_runs["contrastive"]
    whole = train.execute(with_train(run, epochs=3, eval_epochs=[3]), progress=False)
    parent = with_train(run, epochs=1, eval_epochs=[1])
    first = train.execute(parent, progress=False, save_state=tmp_path / "parent.state")
    child = with_train(run, epochs=2, eval_epochs=[2], init=parent.run_id)
    second = train.execute(child, progress=False, init_state=tmp_path / "parent.state")
    assert second.config["train"]["init"] == parent.run_id  # the record names its parent
    assert [p.loss for p in first.loss_curve + second.loss_curve] == [p.loss for p in whole.loss_curve]
    assert {k: v for k, v in second.metrics[-1].items() if k != "epoch"} == \
        {k: v for k, v in whole.metrics[-1].items() if k != "epoch"}
    # A fresh run of the child's length differs: the state was really carried.
    fresh = train.execute(with_train(run, epochs=2, eval_epochs=[2]), progress=False)
    assert [p.loss for p in fresh.loss_curve] != [p.loss for p in second.loss_curve]


def test_a_child_without_its_parents_state_stops_with_one_line(smoke_runs, tmp_path):
    run = smoke_runs["nca"]
    parent = with_train(run, epochs=1, eval_epochs=[1])
    child = with_train(run, init=parent.run_id)
    with pytest.raises(HarnessError, match=f"continues from run {parent.run_id}, whose final state .* is missing"):
        train.execute(child, progress=False, init_state=tmp_path / "absent.state")
    other = with_train(run, epochs=1, eval_epochs=[1], batch_size=16)
    train.execute(other, progress=False, save_state=tmp_path / "other.state")
    with pytest.raises(HarnessError, match="is another run's"):
        train.execute(child, progress=False, init_state=tmp_path / "other.state")


def test_the_training_pass_knn_reference_is_what_the_training_steps_saw(smoke_runs):
    """eval.knn_reference 'training' (the seed-000 original's reference): one full-batch step without dropout sees
    the initial model's embeddings of every training image, and the kNN is fitted on exactly those."""
    from harness.evaluate import evaluate

    run = smoke_runs["nca"]
    config = run.config.model_copy(update={
        "model": {**run.config.model, "dropout": 0.0},
        "train": run.config.train.model_copy(update={"epochs": 2, "eval_epochs": [2], "batch_size": 300}),
        "eval": run.config.eval.model_copy(update={"knn_reference": "training"})})
    trainer = train.Trainer(with_config(run, config), train.Accelerator(cpu=True), data.load("digits"))
    before = trainer.embed(trainer.parts.train)  # the initial network; without dropout train mode is eval mode
    trainer.train_epoch(1, [])
    reference, labels = trainer.training_pass()
    distances = np.linalg.norm(reference[:, None, :] - before[None, :, :], axis=2)
    match = distances.argmin(axis=1)
    assert len(reference) == 300 and sorted(match.tolist()) == list(range(300))  # every image once, reordered
    assert distances.min(axis=1).max() < 1e-5
    assert (labels == trainer.parts.train.labels.numpy()[match]).all()
    trainer.train_epoch(2, [])
    reference, labels = trainer.training_pass()
    assert len(reference) == 600  # every batch of every epoch, as the original collected them
    test = trainer.parts.test
    direct = evaluate(trainer.embed(test), test.labels.numpy(), reference, labels, metrics=["knn_accuracy"],
                      knn_k=3, distance=config.eval.distance)
    assert trainer.evaluate()["knn_accuracy"] == direct["knn_accuracy"]
    resumed = train.Trainer(with_config(run, config), train.Accelerator(cpu=True), data.load("digits"))
    resumed.load_state(trainer.state())  # a checkpoint carries the collected reference
    assert all(np.array_equal(a, b) for a, b in zip(resumed.training_pass(), trainer.training_pass()))
    clean = train.Trainer(with_config(run, config.model_copy(update={"eval": run.config.eval})),
                          train.Accelerator(cpu=True), data.load("digits"))
    assert clean.training_pass() is None and not clean.collected
