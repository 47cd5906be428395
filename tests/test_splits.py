"""splits and training_items: which classes a run trains on, and which items it trains and validates on."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from tests.conftest import with_config
from harness import catalog, data, schema, spec, splits, train
from harness.errors import ConfigError


def test_all_and_first():
    assert splits.seen_classes({"name": "all"}, 4) == [0, 1, 2, 3]
    assert splits.seen_classes({"name": "first", "seen": 3}, 10) == [0, 1, 2]
    assert splits.seen_classes({"name": "first", "seen": 10}, 10) == list(range(10))


def test_random_is_seeded_stable_and_sorted():
    first = splits.seen_classes({"name": "random", "seen": 5, "seed": 3}, 20)
    assert first == splits.seen_classes({"name": "random", "seen": 5, "seed": 3}, 20)
    assert first == sorted(first) and len(set(first)) == 5 and all(0 <= c < 20 for c in first)
    # The documented draw: numpy's default_rng(seed).choice without replacement, sorted.
    assert first == sorted(np.random.default_rng(3).choice(20, 5, replace=False).tolist())
    others = {tuple(splits.seen_classes({"name": "random", "seen": 5, "seed": s}, 20)) for s in range(5)}
    assert len(others) > 1  # the seed changes the classes
    assert splits.seen_classes({"name": "random", "seen": 5}, 20) == \
        splits.seen_classes({"name": "random", "seen": 5, "seed": 0}, 20)


@pytest.mark.parametrize("name", ["first", "random"])
@pytest.mark.parametrize("seen", [0, -1, 11])
def test_seen_out_of_range_names_the_key(name, seen):
    with pytest.raises(ConfigError, match=rf"data\.split\.seen: {seen} seen classes requested but the dataset "
                                          r"has 10 \(use 1\.\.10\)"):
        splits.seen_classes({"name": name, "seen": seen}, 10)


def test_check_suggests_a_split_name_and_refuses_unknown_arguments():
    with pytest.raises(ConfigError, match=r"data\.split\.name: unknown class split 'frist' \(did you mean "
                                          r"'first'\?\); known: all, first, random"):
        check_split({"name": "frist", "seen": 3})
    with pytest.raises(ConfigError, match=r"data\.split: unknown argument 'sen'.*did you mean 'seen'"):
        check_split({"name": "first", "sen": 3})
    with pytest.raises(ConfigError, match=r"data\.split: expected a mapping with a 'name' key"):
        check_split("first")
    check_split({"name": "random", "seen": 3, "seed": 1})


def test_data_config_validates_the_split_on_entry():
    with pytest.raises(ConfigError, match="did you mean 'random'"):
        schema.DataConfig.model_validate({"dataset": "digits", "split": {"name": "randon", "seen": 3}})
    assert schema.DataConfig.model_validate({"dataset": "digits"}).split == {"name": "all"}


# --- training_items ---

def shuffled_labels(classes: int = 6, per_class: int = 20, seed: int = 0) -> torch.Tensor:
    labels = torch.arange(classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def items(labels, seen, config):
    return data.training_items(labels, seen, config.train_per_class, config.val_per_class, config.subset_seed)


def check_split(split):
    catalog.SPLITS.check(split, "data.split")


def data_config(**changes) -> schema.DataConfig:
    return schema.DataConfig.model_validate({"dataset": "digits", **changes})


def test_training_items_are_disjoint_seen_only_and_balanced():
    labels = shuffled_labels()
    seen = [0, 2, 5]
    train_idx, val_idx = items(labels, seen, data_config(train_per_class=7, val_per_class=4))
    assert len(set(train_idx.tolist()) & set(val_idx.tolist())) == 0
    for idx, per_class in ((train_idx, 7), (val_idx, 4)):
        assert len(set(idx.tolist())) == len(idx)
        assert torch.unique(labels[idx], return_counts=True)[0].tolist() == seen
        assert torch.unique(labels[idx], return_counts=True)[1].tolist() == [per_class] * 3


def test_training_items_use_every_remaining_item_without_train_per_class():
    labels = shuffled_labels()
    train_idx, val_idx = items(labels, [1, 4], data_config(val_per_class=5))
    seen_items = torch.nonzero((labels == 1) | (labels == 4)).flatten().tolist()
    assert sorted(train_idx.tolist() + val_idx.tolist()) == seen_items
    assert torch.bincount(labels[train_idx], minlength=6).tolist() == [0, 15, 0, 0, 15, 0]


def test_training_items_are_fixed_by_subset_seed():
    labels = shuffled_labels()
    config = data_config(train_per_class=6, val_per_class=3, subset_seed=4)
    first, second = items(labels, [0, 1, 2], config), items(labels, [0, 1, 2], config)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    other = items(labels, [0, 1, 2], data_config(train_per_class=6, val_per_class=3, subset_seed=5))
    assert not torch.equal(first[0], other[0]) or not torch.equal(first[1], other[1])


def test_no_validation_items_unless_asked():
    _, val_idx = items(shuffled_labels(), [0, 1], data_config(train_per_class=5))
    assert val_idx is None


@pytest.mark.parametrize("per_class,seed", [(None, 0), (8, 0), (8, 3), (20, 1)])
def test_split_all_without_validation_keeps_the_old_training_subset(per_class, seed):
    """Run ids made before splits existed must keep training on exactly the same images."""
    labels = shuffled_labels(seed=seed + 10)
    config = data_config(train_per_class=per_class, subset_seed=seed)
    train_idx, val_idx = items(labels, splits.seen_classes({"name": "all"}, 6), config)
    assert val_idx is None
    assert torch.equal(train_idx, data.balanced_subset(labels, per_class, seed, "train"))


def test_too_few_items_left_for_training_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"data\.train_per_class: 10 requested but class \d has only 5 train items"):
        items(shuffled_labels(), [0, 1], data_config(train_per_class=10, val_per_class=15))


def test_trainer_keeps_unseen_classes_out_of_training():
    base = next(r for r in spec.load("loss_epochs", "smoke").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "contrastive")
    resolved = base.config.model_dump(mode="json")
    resolved["data"]["split"] = {"name": "first", "seen": 6}
    run = with_config(base, schema.RunConfig.model_validate(resolved))
    trainer = train.Trainer(run, train.Accelerator(cpu=True), data.load("digits"))
    assert trainer.parts.seen == list(range(6))
    assert torch.unique(trainer.parts.train.labels).tolist() == list(range(6))
    assert torch.unique(trainer.parts.test.labels).tolist() == list(range(6))
    assert torch.unique(trainer.parts.unseen.labels).tolist() == [6, 7, 8, 9]
    per_class = resolved["data"]["test_per_class"]
    assert len(trainer.parts.test.labels) == 6 * per_class and len(trainer.parts.unseen.labels) == 4 * per_class
    assert len(trainer.parts.train.labels) == 6 * resolved["data"]["train_per_class"]
    # The test items are the same as without a split, only divided between seen and unseen.
    whole = train.Trainer(base, train.Accelerator(cpu=True), data.load("digits"))
    assert whole.parts.unseen is None
    assert sorted(trainer.parts.test.labels.tolist() + trainer.parts.unseen.labels.tolist()) == sorted(whole.parts.test.labels.tolist())
