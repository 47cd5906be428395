"""A run's evaluation protocol: which items each requested metric scores, and against which reference.

- eval.metrics score the test items of the seen classes (or, with eval.classes = unseen, those of the unseen
  classes: the class-disjoint protocol), and the validation items as val_*;
- metrics in TRAIN_REFERENCE_METRICS (kNN classification) use the training items as the reference, the other
  retrieval metrics rank the scored items against themselves;
- HEAD_METRICS score a classifier head's logits instead of the embeddings;
- eval.unseen_metrics score the test items of the unseen classes among themselves, as unseen_*.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness.catalog import HEAD_METRICS, TRAIN_REFERENCE_METRICS, UNSEEN_PREFIX, VALIDATION_PREFIX
from harness.evaluate import classification_accuracy, evaluate

Embed = Callable[[Any], np.ndarray]  # a split -> its embeddings (one clean eval-mode pass)
Head = Callable[[np.ndarray], torch.Tensor]  # embeddings -> class scores (larger = more likely)


def score_run(eval_cfg: Any, embed: Embed, *, train: Any, test: Any, val: Any = None, unseen: Any = None,
              head: Head | None = None,
              training_pass: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """Every metric a run's eval config asks for, named as its record stores them. `training_pass` (embeddings
    and labels collected during training) is the kNN reference when eval.knn_reference is "training"."""
    reference = None
    if any(m in TRAIN_REFERENCE_METRICS for m in eval_cfg.metrics):
        if getattr(eval_cfg, "knn_reference", "clean") == "training":
            if training_pass is None or not len(training_pass[1]):
                raise ValueError("eval.knn_reference 'training' needs embeddings collected during training; "
                                 "a run evaluated before any step has none")
            reference = training_pass
        else:
            reference = (embed(train), _labels(train))
    main = unseen if eval_cfg.classes == "unseen" else test
    values = _score(eval_cfg, embed, main, eval_cfg.metrics, reference, head)
    if val is not None:
        values |= {VALIDATION_PREFIX + k: v
                   for k, v in _score(eval_cfg, embed, val, eval_cfg.metrics, reference, head).items()}
    if unseen is not None and eval_cfg.unseen_metrics:
        # Unseen classes have no training items: every metric ranks the unseen items among themselves.
        values |= {UNSEEN_PREFIX + k: v
                   for k, v in _score(eval_cfg, embed, unseen, eval_cfg.unseen_metrics, None, head).items()}
    return values


def _labels(split: Any) -> np.ndarray:
    return split.labels.cpu().numpy()


def _score(eval_cfg: Any, embed: Embed, split: Any, metrics: list[str],
           reference: tuple[np.ndarray, np.ndarray] | None, head: Head | None) -> dict[str, float]:
    embeddings = embed(split)
    labels = _labels(split)
    common = {"knn_k": eval_cfg.knn_k, "distance": eval_cfg.distance, **eval_cfg.options}
    heads = [m for m in metrics if m in HEAD_METRICS]
    against_train = [m for m in metrics if m in TRAIN_REFERENCE_METRICS and reference is not None]
    against_self = [m for m in metrics if m not in heads and m not in against_train]
    values: dict[str, float] = {}
    if heads:
        if head is None:
            raise ValueError(f"{heads[0]} needs a classifier head")  # the spec refuses such configs
        with torch.no_grad():
            values["classification_accuracy"] = classification_accuracy(head(embeddings), labels)
    if against_train:
        values |= evaluate(embeddings, labels, *reference, metrics=against_train, **common)
    if against_self:
        values |= evaluate(embeddings, labels, metrics=against_self, **common)
    return values
