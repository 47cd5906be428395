"""Training throughput: the harness's epoch loop against a bare PyTorch loop, measured side by side in one run.

Both loops train the same model (thesis convnet), loss (contrastive), miner (semihard triplet), optimizer (Adam 1e-3)
and batch (64) over the same in-memory 28x28 tensors. Rounds alternate between the two so machine noise hits both
alike; the ratio of median epoch times must be >= 0.90 (the harness at most ~11% slower).
Run with `make bench` (pytest tests/bench --benchmark-only).
"""

from __future__ import annotations

import dataclasses
import io
import statistics
import time

import torch
from pytorch_metric_learning import distances, losses, miners, reducers
from tqdm.auto import tqdm

from harness import data, models, spec, train

ROUNDS = 5
IMAGES = 2560
REQUIRED_RATIO = 0.90


def synthetic_dataset() -> data.Dataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(IMAGES, 1, 28, 28, generator=generator)
    labels = torch.arange(IMAGES) % 10
    split = data.Split(images, labels)
    return data.Dataset("synthetic", split, data.Split(images[:500], labels[:500]), 10, "generated")


def harness_trainer(dataset: data.Dataset) -> train.Trainer:
    run = next(r for r in spec.load("loss_epochs", "full").runs if r.axes.get("protocol") != "original" and r.axes["loss"] == "contrastive")
    config = run.config.model_copy(update={"data": run.config.data.model_copy(update={"train_per_class": None})})
    return train.Trainer(dataclasses.replace(run, config=config), train.Accelerator(cpu=True), dataset)


class BareLoop:
    """What a hand-written script does: the same objects, no harness."""

    def __init__(self, dataset: data.Dataset) -> None:
        torch.manual_seed(0)
        self.images, self.labels = dataset.train.images, dataset.train.labels
        self.model = models.ThesisConvNet((1, 28, 28), embedding_dim=128)
        l2 = distances.LpDistance(normalize_embeddings=True, p=2, power=1)
        self.loss = losses.ContrastiveLoss(pos_margin=0, neg_margin=1, distance=l2,
                                           reducer=reducers.AvgNonZeroReducer())
        self.miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard",
                                               distance=distances.DotProductSimilarity())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.generator = torch.Generator().manual_seed(0)

    def epoch(self) -> None:
        self.model.train()
        order = torch.randperm(len(self.labels), generator=self.generator)
        for start in range(0, len(order), 64):
            index = order[start:start + 64]
            x, y = self.images[index], self.labels[index]
            embeddings = self.model(x)
            loss = self.loss(embeddings, y, self.miner(embeddings, y))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()


def test_harness_loop_keeps_up_with_a_bare_loop(benchmark):
    dataset = synthetic_dataset()
    trainer, bare = harness_trainer(dataset), BareLoop(dataset)
    # The harness epoch as `harness run` executes it, progress bar included (drawn into a buffer).
    bar = tqdm(total=10**9, file=io.StringIO(), mininterval=1.0)
    epoch = iter(range(1, 10**6))

    def harness_epoch() -> None:
        trainer.train_epoch(next(epoch), [], bar)

    harness_epoch(), bare.epoch()  # warm-up: allocator, thread pools
    harness_s, bare_s = [], []
    for _ in range(ROUNDS):
        tick = time.perf_counter()
        bare.epoch()
        bare_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        harness_epoch()
        harness_s.append(time.perf_counter() - tick)
    ratio = statistics.median(bare_s) / statistics.median(harness_s)
    benchmark.extra_info.update({"bare_epoch_s": statistics.median(bare_s),
                                 "harness_epoch_s": statistics.median(harness_s), "throughput_ratio": ratio,
                                 "images_per_epoch": IMAGES})
    benchmark.pedantic(harness_epoch, rounds=2, iterations=1)
    print(f"\nharness {IMAGES / statistics.median(harness_s):.0f} img/s, bare {IMAGES / statistics.median(bare_s):.0f} "
          f"img/s, ratio {ratio:.3f} (required >= {REQUIRED_RATIO})")
    assert ratio >= REQUIRED_RATIO
