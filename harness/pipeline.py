"""Input pipelines, one per kind of split: training batches in the run's order, and evaluation batches.

A "tensor" split lives on the training device and a step indexes it; a "files" split is decoded and augmented
by DataLoader workers, each sample under its own seed drawn from (run seed, epoch), so batches do not depend on
the number of workers. Either way the batch order comes from the run's batch-order generator alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from harness.catalog import SAMPLERS
from harness.data import FileSplit, Split, TensorSplit

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorPipeline:
    """Batches indexed from a split held in device memory (MNIST-sized data is a few hundred MB)."""

    def __init__(self, train: TensorSplit, cfg: Any, order: torch.Generator, *, device: torch.device,
                 memory_format: torch.memory_format, world: int = 1, rank: int = 0, workers: int = 0) -> None:
        self.train, self.cfg, self.order = train, cfg, order
        self.device, self.memory_format = device, memory_format
        self.world, self.rank = world, rank

    def epoch_order(self) -> torch.Tensor:
        return SAMPLERS.build(self.cfg.train.sampler, self.train.labels, self.cfg.train.batch_size, self.order)

    def batches(self, epoch: int) -> Iterator[Batch]:
        batch_size = self.cfg.train.batch_size
        permutation = self.epoch_order().to(self.device)
        for start in range(0, len(permutation), batch_size):
            index = permutation[start:start + batch_size]
            # Flips are drawn for the whole global batch from the batch-order generator, so every image gets
            # the same flip whatever the process count.
            flip = torch.rand(len(index), generator=self.order) < 0.5 if "hflip" in self.cfg.train.augment else None
            if self.world > 1:
                # Every process draws the same global order and keeps its share: the global batch is exactly the
                # one-process batch. A last batch that does not split evenly loses its remainder (PML's gather
                # needs equal shares), so the step count matches one process whenever it does split evenly.
                share = slice(self.rank, len(index) - len(index) % self.world, self.world)
                index = index[share]
                flip = flip[share] if flip is not None else None
                if len(index) == 0:
                    continue
            images = self.train.images[index]
            if flip is not None:
                images = torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)
            yield images, self.train.labels[index]

    def eval_batches(self, split: TensorSplit, batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(split.labels), batch_size):
            yield split.images[start:start + batch_size]


class FilePipeline(TensorPipeline):
    """Image files decoded by DataLoader workers: the DML training view per epoch, the centre crop for evaluation."""

    def __init__(self, train: FileSplit, cfg: Any, order: torch.Generator, *, device: torch.device,
                 memory_format: torch.memory_format, world: int = 1, rank: int = 0, workers: int = 0) -> None:
        super().__init__(train, cfg, order, device=device, memory_format=memory_format, world=world, rank=rank)
        self.workers = workers

    def batches(self, epoch: int) -> Iterator[Batch]:
        from harness.data import folders

        order = self.epoch_order()
        state = int(np.random.SeedSequence([self.cfg.seed, epoch]).generate_state(1, np.uint64)[0] >> 1)
        seeds = torch.randint(0, 2**62, (len(order),), generator=torch.Generator().manual_seed(state))
        loader = torch.utils.data.DataLoader(
            folders.ImageFolderSplit(self.train, folders.train_transform(self.cfg.data.image_size)),
            batch_size=self.cfg.train.batch_size, sampler=list(zip(order.tolist(), seeds.tolist())),
            num_workers=self.workers, worker_init_fn=folders.seed_worker,
            generator=torch.Generator().manual_seed(state))
        for batch, labels in loader:
            yield batch.to(self.device, memory_format=self.memory_format), labels.to(self.device)

    def eval_batches(self, split: FileSplit, batch_size: int) -> Iterator[torch.Tensor]:
        from harness.data import folders

        size = self.cfg.data.image_size
        loader = torch.utils.data.DataLoader(
            folders.ImageFolderSplit(split, folders.test_transform(size, resize=size * 256 // 224)),
            batch_size=batch_size, num_workers=self.workers)
        for batch, _ in loader:
            yield batch.to(self.device, memory_format=self.memory_format)


PIPELINES = {"tensor": TensorPipeline, "files": FilePipeline}


def for_split(train: Split, *args: Any, **kwargs: Any) -> TensorPipeline:
    """The pipeline for the kind of split the run trains on."""
    return PIPELINES[train.kind](train, *args, **kwargs)
