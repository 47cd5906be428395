"""evaluate.runs: which items each metric of a run scores, against which reference, under which name."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harness.evaluate import evaluate
from harness.evaluate.runs import score_run
from tests.conftest import clustered


def split(seed: int, classes: int = 4, n: int = 60):
    x, y = clustered(n, classes, 8, seed)
    return SimpleNamespace(x=x, labels=torch.from_numpy(y))


def config(**changes):
    return SimpleNamespace(**{"metrics": ["knn_accuracy", "precision_at_1"], "knn_k": 3, "distance": "euclidean",
                              "options": {}, "classes": "seen", "unseen_metrics": [], "knn_reference": "clean",
                              **changes})


def embed(part):
    return part.x


def test_knn_classifies_against_the_training_items_and_retrieval_ranks_the_test_items_among_themselves():
    train, test = split(0), split(1)
    got = score_run(config(), embed, train=train, test=test)
    y_train, y_test = train.labels.numpy(), test.labels.numpy()
    assert got["knn_accuracy"] == evaluate(test.x, y_test, train.x, y_train, metrics=["knn_accuracy"])["knn_accuracy"]
    assert got["precision_at_1"] == evaluate(test.x, y_test, metrics=["precision_at_1"])["precision_at_1"]


def test_validation_and_unseen_items_are_scored_under_their_prefixes():
    train, test, val, unseen = split(0), split(1), split(2), split(3)
    got = score_run(config(unseen_metrics=["map_at_r"]), embed, train=train, test=test, val=val, unseen=unseen)
    assert set(got) == {"knn_accuracy", "precision_at_1", "val_knn_accuracy", "val_precision_at_1",
                        "unseen_map_at_r"}
    assert got["unseen_map_at_r"] == evaluate(unseen.x, unseen.labels.numpy(), metrics=["map_at_r"])["map_at_r"]
    # The class-disjoint protocol scores the unseen classes' items as the main metrics.
    disjoint = score_run(config(classes="unseen", metrics=["precision_at_1"]), embed, train=train, test=test,
                         unseen=unseen)
    assert disjoint["precision_at_1"] == evaluate(unseen.x, unseen.labels.numpy(),
                                                  metrics=["precision_at_1"])["precision_at_1"]


def test_a_head_metric_scores_the_logits_and_the_training_pass_reference_must_exist():
    train, test = split(0), split(1)
    centres = np.stack([test.x[test.labels.numpy() == c].mean(0) for c in range(4)])
    head = lambda e: -torch.cdist(torch.as_tensor(e), torch.as_tensor(centres))  # noqa: E731 (nearest centre)
    got = score_run(config(metrics=["classification_accuracy"]), embed, train=train, test=test, head=head)
    assert 0.5 < got["classification_accuracy"] <= 1.0
    with pytest.raises(ValueError, match="needs embeddings collected during training"):
        score_run(config(knn_reference="training"), embed, train=train, test=test,
                  training_pass=(np.zeros((0, 8), np.float32), np.zeros(0, np.int64)))
