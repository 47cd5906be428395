"""One run: a resolved config and its seed in, a run record out (fresh model, loss, optimizer; evaluated on schedule)."""

from __future__ import annotations

import math
import os
import random
import resource
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper, DistributedMinerWrapper
from tqdm.auto import tqdm

from harness import data as datasets
from harness import evaluate, images, provenance, splits
from harness.errors import ConfigError, HarnessError
from harness.models import build_model, embedding_dim
from harness.objectives import build_loss, build_miner, class_scores, has_classifier
from harness.registry import Registry
from harness.spec import Run
from harness.store import SCHEMA_VERSION

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


def _adam(params: Iterable[torch.nn.Parameter], lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _sgd(params: Iterable[torch.nn.Parameter], lr: float = 0.01, momentum: float = 0.0,
         weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


OPTIMIZERS.register("adam", _adam)
OPTIMIZERS.register("sgd", _sgd)

def _random_order(labels: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A shuffled pass over the training items, from the run's batch-order generator."""
    return torch.randperm(len(labels), generator=generator)


def _m_per_class(labels: torch.Tensor, batch_size: int, generator: torch.Generator, m: int = 4) -> torch.Tensor:
    """pytorch-metric-learning's MPerClassSampler: every batch holds batch_size / m classes with m items each.

    It draws from numpy's global generator, which set_seed seeds and checkpoints save, so it is reproducible.
    """
    if batch_size % m:
        raise ConfigError(f"train.sampler: batch_size {batch_size} is not a multiple of m = {m}")
    sampler = MPerClassSampler(labels.cpu(), m, batch_size=batch_size, length_before_new_iter=len(labels))
    return torch.tensor(list(iter(sampler)), dtype=torch.int64)


def _constant(optimizer: torch.optim.Optimizer) -> None:
    return None


def _step(optimizer: torch.optim.Optimizer, step_size: int = 5, gamma: float = 0.1) -> Any:
    """The learning rate times gamma every step_size epochs (the seed-001 script's schedule)."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


SCHEDULES: Registry[Callable[..., Any]] = Registry("learning-rate schedule")
SCHEDULES.register("constant", _constant)
SCHEDULES.register("step", _step)

SAMPLERS: Registry[Callable[..., torch.Tensor]] = Registry("sampler")
SAMPLERS.register("random", _random_order)
SAMPLERS.register("m_per_class", _m_per_class)

# Points per epoch kept in the record's loss curve (means over equal windows of steps).
CURVE_POINTS_PER_EPOCH = 10


class RunFailure(Exception):
    """A run that cannot go on (NaN loss...): recorded with status 'failed', and the matrix continues."""


class Trainer:
    """The pieces of one run, built fresh from its config; `step` is the hot loop's body."""

    def __init__(self, run: Run, accelerator: Accelerator, dataset: datasets.Dataset | images.ImageDataset,
                 workers: int = 0) -> None:
        cfg = run.config
        self.cfg = cfg
        self.accelerator = accelerator
        set_seed(cfg.seed)
        try:
            self.seen = splits.seen_classes(cfg.data.split, dataset.num_classes)
        except TypeError as exc:  # a required split argument left out
            raise ConfigError(f"data.split: {exc}") from None
        train_idx, val_idx = training_items(dataset.train.labels, self.seen, cfg.data)
        test_idx = datasets.balanced_subset(dataset.test.labels, cfg.data.test_per_class, cfg.data.subset_seed,
                                            "test")
        seen_test = torch.isin(dataset.test.labels[test_idx], torch.tensor(self.seen))
        # The splits live on the training device for the whole run (MNIST-sized data is a few hundred MB),
        # so a step indexes device memory instead of copying a batch from the host.
        device = accelerator.device
        self.train = datasets.subset(dataset.train, train_idx, device)
        self.test = datasets.subset(dataset.test, test_idx[seen_test], device)
        self.val = datasets.subset(dataset.train, val_idx, device) if val_idx is not None else None
        self.unseen = datasets.subset(dataset.test, test_idx[~seen_test], device) if (~seen_test).any() else None
        if cfg.eval.classes == "unseen" and self.unseen is None:
            raise ConfigError("eval.classes: 'unseen' needs a data.split that leaves classes unseen")
        self.files = isinstance(self.train, images.ImageSplit)  # image files decoded by a DataLoader, per epoch
        self.workers = workers
        if self.files and accelerator.num_processes > 1:
            raise HarnessError("image-file datasets run on one process per run here; use --shard to spread runs "
                               "over GPUs")
        model = build_model(cfg.model, (3, cfg.data.image_size, cfg.data.image_size) if self.files
                            else dataset.input_shape)
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        model = model.to(memory_format=self.memory_format)
        # A classifier or proxy needs as many outputs as there are training classes (CUB trains on 100 of 200).
        self.loss_fn = build_loss(cfg.loss, num_classes=int(self.train.labels.max()) + 1,
                                  embedding_size=embedding_dim(cfg.model))
        self.needs_pairs = not has_classifier(cfg.loss)
        self.miner = build_miner(cfg.miner)
        # Trainable loss parameters (proxies) are optimised with the model: the original left them random.
        params = list(model.parameters()) + list(self.loss_fn.parameters())
        optimizer = OPTIMIZERS.get(cfg.optimizer["name"])(
            params, **{k: v for k, v in cfg.optimizer.items() if k != "name"})
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        schedule = cfg.train.lr_schedule
        self.scheduler = SCHEDULES.get(schedule["name"])(
            self.optimizer, **{k: v for k, v in schedule.items() if k != "name"})
        self.loss_fn.to(accelerator.device)
        self.world = accelerator.num_processes
        self.head = self.loss_fn  # the unwrapped loss: its get_logits (if any) classifies
        # Losses that compare the items of a batch see the whole global batch: pytorch-metric-learning gathers
        # the embeddings of every process (and scales the loss by the world size, as DDP averages gradients).
        # A per-item loss (a plain classifier head) needs nothing: DDP's average is the global batch's mean.
        self.gathered = self.world > 1 and isinstance(self.loss_fn, BaseMetricLossFunction)
        if self.world > 1:
            if cfg.train.batch_size % self.world:
                raise HarnessError(f"train.batch_size {cfg.train.batch_size} is not divisible by the "
                                   f"{self.world} processes; each process takes an equal share of a global batch")
            if self.gathered:
                self.loss_fn = DistributedLossWrapper(self.loss_fn)
            self.miner = DistributedMinerWrapper(self.miner) if self.miner is not None else None
        self.loss_params = [p for p in self.loss_fn.parameters() if p.requires_grad]
        # Batch order has its own generator, so evaluation (or anything else drawing random numbers) cannot move it.
        self.order = torch.Generator().manual_seed(cfg.seed)
        unwrapped = self.accelerator.unwrap_model(self.model)
        self.backbone = list(unwrapped.backbone_parameters()) if cfg.train.warmup_epochs else []
        self.trainable = [p.requires_grad for p in self.backbone]  # frozen BatchNorm stays frozen after warm-up
        self.autocast = dict(device_type=accelerator.device.type, dtype=torch.bfloat16,
                             enabled=cfg.train.precision == "bf16")

    def warm_up(self, epoch: int) -> None:
        """Head-only epochs first (the backbone's weights do not move), then the whole model."""
        for param, trainable in zip(self.backbone, self.trainable):
            param.requires_grad_(trainable and epoch > self.cfg.train.warmup_epochs)

    def epoch_order(self) -> torch.Tensor:
        sampler = self.cfg.train.sampler
        return SAMPLERS.get(sampler["name"])(self.train.labels, self.cfg.train.batch_size, self.order,
                                             **{k: v for k, v in sampler.items() if k != "name"})

    def file_batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Image files: decoded and augmented by DataLoader workers, each sample under a seed drawn from
        (run seed, epoch), so batches do not depend on the number of workers."""
        order = self.epoch_order()
        state = int(np.random.SeedSequence([self.cfg.seed, epoch]).generate_state(1, np.uint64)[0] >> 1)
        seeds = torch.randint(0, 2**62, (len(order),), generator=torch.Generator().manual_seed(state))
        loader = torch.utils.data.DataLoader(
            images.ImageFolderSplit(self.train, images.train_transform(self.cfg.data.image_size)),
            batch_size=self.cfg.train.batch_size, sampler=list(zip(order.tolist(), seeds.tolist())),
            num_workers=self.workers, worker_init_fn=images._seed_worker,
            generator=torch.Generator().manual_seed(state))
        for batch, labels in loader:
            yield batch.to(self.accelerator.device, memory_format=self.memory_format), labels.to(self.accelerator.device)

    def batches(self, epoch: int = 1) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        if self.files:
            yield from self.file_batches(epoch)
            return
        permutation = self.epoch_order().to(self.accelerator.device)
        for start in range(0, len(permutation), self.cfg.train.batch_size):
            index = permutation[start:start + self.cfg.train.batch_size]
            # Flips are drawn for the whole global batch from the batch-order generator, so every image gets
            # the same flip whatever the process count.
            flip = torch.rand(len(index), generator=self.order) < 0.5 if "hflip" in self.cfg.train.augment else None
            if self.world > 1:
                # Every process draws the same global order and keeps its share: the global batch is exactly the
                # one-process batch. A last batch that does not split evenly loses its remainder (PML's gather
                # needs equal shares), so the step count matches one process whenever it does split evenly.
                share = slice(self.accelerator.process_index, len(index) - len(index) % self.world, self.world)
                index = index[share]
                flip = flip[share] if flip is not None else None
                if len(index) == 0:
                    continue
            images = self.train.images[index]
            if flip is not None:
                images = torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)
            yield images, self.train.labels[index]

    def step(self, batch: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(**self.autocast):
            embeddings = self.model(batch)
        embeddings = embeddings.float()  # losses and miners in full precision
        tuples = self.miner(embeddings, labels) if self.miner is not None else None
        loss = self.loss_fn(embeddings, labels, tuples)
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        if self.world > 1:
            for param in self.loss_params:  # the loss module is not wrapped in DDP: average its gradients here
                if param.grad is not None:
                    param.grad = self.accelerator.reduce(param.grad, reduction="mean")
        self.optimizer.step()
        if self.gathered:
            return loss.detach() / self.world
        return self.accelerator.reduce(loss.detach(), reduction="mean") if self.world > 1 else loss.detach()

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train.labels) / self.cfg.train.batch_size)

    def train_epoch(self, epoch: int, curve: list[dict[str, float]], bar: Any = None) -> int:
        """One pass over the training split; appends mean losses over equal windows of steps to `curve`.

        Raises RunFailure on a non-finite loss. Returns the number of training images seen.
        """
        window = max(1, self.steps_per_epoch // CURVE_POINTS_PER_EPOCH)
        first_step = (epoch - 1) * self.steps_per_epoch
        running, count, seen, with_pairs = 0.0, 0, 0, 0
        self.warm_up(epoch)
        if self.needs_pairs and self.cfg.train.batch_size == 1:  # fail before BatchNorm fails on one image
            raise RunFailure(self.no_pair(epoch))
        for step, (batch, labels) in enumerate(self.batches(epoch), first_step + 1):
            with_pairs += int(len(torch.unique(labels)) < len(labels))
            value = float(self.step(batch, labels))  # the global batch's loss, the same on every process
            if not math.isfinite(value):
                raise RunFailure(f"loss became {value} at epoch {epoch}, step {step}")
            running += value
            count += 1
            seen += len(labels)
            if count == window:
                curve.append({"epoch": epoch, "step": step, "loss": running / count})
                running, count = 0.0, 0
            if bar is not None:
                bar.update(1)
        if count:
            curve.append({"epoch": epoch, "step": step, "loss": running / count})
        if self.scheduler is not None:
            self.scheduler.step()
        if self.needs_pairs and with_pairs == 0:
            # Pair and triplet losses return 0 without a positive pair: an epoch of zeros trains nothing.
            raise RunFailure(self.no_pair(epoch))
        return seen

    def no_pair(self, epoch: int) -> str:
        return (f"no batch of epoch {epoch} had a positive pair (two items of one class) at batch size "
                f"{self.cfg.train.batch_size}: the loss had nothing to learn from")

    def state(self) -> dict[str, Any]:
        """Everything the rest of the run depends on: weights, optimizer, loss parameters, and every RNG."""
        legacy = np.random.get_state()
        py_version, py_state, py_gauss = random.getstate()
        return {
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "loss": self.loss_fn.state_dict(),
            "batch_order": self.order.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": {"keys": torch.from_numpy(legacy[1].astype(np.int64)), "pos": int(legacy[2]),
                          "has_gauss": int(legacy[3]), "gauss": float(legacy[4])},
            "python_rng": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.loss_fn.load_state_dict(state["loss"])
        self.order.set_state(state["batch_order"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        legacy = state["numpy_rng"]
        np.random.set_state(("MT19937", legacy["keys"].numpy().astype(np.uint32), legacy["pos"],
                             legacy["has_gauss"], legacy["gauss"]))
        py = state["python_rng"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))

    @torch.no_grad()
    def embed(self, split: datasets.Split | images.ImageSplit) -> np.ndarray:
        """A clean eval-mode pass (no dropout, no gradient) over a whole split, each image decoded once."""
        model = self.accelerator.unwrap_model(self.model)  # no DDP hooks: only the main process evaluates
        model.eval()
        out = []
        if isinstance(split, images.ImageSplit):
            size = self.cfg.data.image_size
            loader = torch.utils.data.DataLoader(
                images.ImageFolderSplit(split, images.test_transform(size, resize=size * 256 // 224)),
                batch_size=self.cfg.eval.batch_size, num_workers=self.workers)
            chunks = (batch.to(self.accelerator.device, memory_format=self.memory_format) for batch, _ in loader)
        else:
            chunks = (split.images[start:start + self.cfg.eval.batch_size]
                      for start in range(0, len(split.labels), self.cfg.eval.batch_size))
        for chunk in chunks:
            with torch.autocast(**self.autocast):
                out.append(model(chunk).float().cpu())
        model.train()
        return torch.cat(out).numpy()

    def evaluate(self) -> dict[str, float]:
        """eval.metrics on the test items of the seen classes (and on the validation items, as val_*), and
        eval.unseen_metrics on the test items of the unseen classes (as unseen_*)."""
        train = None
        if any(m in evaluate.TRAIN_REFERENCE_METRICS for m in self.cfg.eval.metrics):
            train = (self.embed(self.train), self.train.labels.cpu().numpy())
        main = self.unseen if self.cfg.eval.classes == "unseen" else self.test
        values = self.score(main, self.cfg.eval.metrics, train)
        if self.val is not None:
            values |= {f"val_{k}": v for k, v in self.score(self.val, self.cfg.eval.metrics, train).items()}
        if self.unseen is not None and self.cfg.eval.unseen_metrics:
            # Unseen classes have no training items: every metric ranks the unseen items among themselves.
            values |= {f"unseen_{k}": v for k, v in self.score(self.unseen, self.cfg.eval.unseen_metrics).items()}
        return values

    def score(self, split: datasets.Split, metrics: list[str],
              train: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
        embeddings = self.embed(split)
        labels = split.labels.cpu().numpy()
        common = {"knn_k": self.cfg.eval.knn_k, "distance": self.cfg.eval.distance, **self.cfg.eval.options}
        heads = [m for m in metrics if m in evaluate.HEAD_METRICS]
        against_train = [m for m in metrics if m in evaluate.TRAIN_REFERENCE_METRICS and train is not None]
        against_self = [m for m in metrics if m not in heads and m not in against_train]
        values: dict[str, float] = {}
        if heads:
            with torch.no_grad():
                logits = class_scores(self.head, torch.from_numpy(embeddings).to(self.accelerator.device))
            values["classification_accuracy"] = evaluate.classification_accuracy(logits, split.labels)
        if against_train:
            values |= evaluate.evaluate(embeddings, labels, *train, metrics=against_train, **common)
        if against_self:
            values |= evaluate.evaluate(embeddings, labels, metrics=against_self, **common)
        return values


def training_items(labels: torch.Tensor, seen: list[int], data: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(training indices, validation indices or None) among the items of the seen classes.

    The validation items are drawn per class first (data.val_per_class), the training subset
    (data.train_per_class) from what is left, both with data.subset_seed: the two never share an item.
    """
    pool = torch.nonzero(torch.isin(labels, torch.tensor(seen))).flatten()
    val = None
    if data.val_per_class is not None:
        chosen = datasets.balanced_subset(labels[pool], data.val_per_class, data.subset_seed, "val")
        val = pool[chosen]
        keep = torch.ones(len(pool), dtype=torch.bool)
        keep[chosen] = False
        pool = pool[keep]
    return pool[datasets.balanced_subset(labels[pool], data.train_per_class, data.subset_seed, "train")], val


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a kill during the save leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path | None, run_id: str) -> dict[str, Any] | None:
    """A checkpoint of this run, loaded weights-only (no code from the file runs); None if absent or unusable."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file: start the run over rather than trust it
        return None
    return state if isinstance(state, dict) and state.get("run_id") == run_id else None


def execute(run: Run, *, data_root: Path | None = None, progress: bool = True, command: list[str] | None = None,
            accelerator: Accelerator | None = None, checkpoint: Path | None = None) -> dict[str, Any]:
    """Train and evaluate one run; return its record (status 'ok' or 'failed'). User errors propagate.

    With `checkpoint`, the run's state is saved there after every epoch, and a run that finds a checkpoint of
    itself continues from it: killed at any moment and restarted, it ends with the same metrics and loss curve
    as an uninterrupted run (on CPU, bit for bit).
    """
    started = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    dataset = datasets.load(run.config.data.dataset, data_root)
    cfg = run.config
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "study": run.study,
        "profile": run.profile,
        "axes": run.axes,
        "seed": cfg.seed,
        "config": run.config_dict(),
        "status": "running",
        "metrics": [],
        "loss_curve": [],
    }
    timing = {"train_s": 0.0, "eval_s": 0.0, "train_images": 0}
    try:
        # DataLoader workers for image files ($HARNESS_WORKERS); every sample has its own seed, so the count
        # changes speed, never a number.
        workers = int(os.environ.get("HARNESS_WORKERS") or min(4, os.cpu_count() or 1))
        trainer = Trainer(run, accelerator, dataset, workers=workers)
        record["data"] = {"train_size": len(trainer.train.labels), "test_size": len(trainer.test.labels),
                          "val_size": len(trainer.val.labels) if trainer.val is not None else 0,
                          "unseen_test_size": len(trainer.unseen.labels) if trainer.unseen is not None else 0,
                          "seen_classes": trainer.seen,
                          "num_classes": dataset.num_classes, "input_shape": list(dataset.input_shape),
                          "normalisation": {"mean": dataset.mean, "std": dataset.std}}
        network = trainer.accelerator.unwrap_model(trainer.model)
        if getattr(network, "weights_source", None):  # pretrained weights: which file, by content
            record["model_weights"] = {"source": str(network.weights_source), "sha256": network.weights_sha256}
        bar = tqdm(total=cfg.train.epochs * trainer.steps_per_epoch, disable=not progress, unit="step", leave=False,
                   desc=f"{run.study}/{run.run_id[:8]} " + " ".join(f"{v}" for v in run.axes.values())
                   + f" seed {cfg.seed}", mininterval=1.0)
        first_epoch = 1
        resumed = load_checkpoint(checkpoint, run.run_id)
        if resumed is not None:
            trainer.load_state(resumed["trainer"])
            record["metrics"], record["loss_curve"] = resumed["metrics"], resumed["loss_curve"]
            timing = dict(resumed["timing"])
            first_epoch = resumed["epoch"] + 1
            record["resumed_from_epoch"] = resumed["epoch"]
            bar.update(resumed["epoch"] * trainer.steps_per_epoch)
        with bar:
            for epoch in range(first_epoch, cfg.train.epochs + 1):
                tick = time.perf_counter()
                timing["train_images"] += trainer.train_epoch(epoch, record["loss_curve"], bar)
                timing["train_s"] += time.perf_counter() - tick
                if epoch in cfg.train.eval_epochs:
                    tick = time.perf_counter()
                    if accelerator.is_main_process:  # the record comes from one process; the others wait
                        record["metrics"].append({"epoch": epoch, **trainer.evaluate()})
                        bar.set_postfix({k: f"{v:.4f}" for k, v in record["metrics"][-1].items() if k != "epoch"})
                    accelerator.wait_for_everyone()
                    timing["eval_s"] += time.perf_counter() - tick
                if checkpoint is not None and epoch < cfg.train.epochs:
                    save_checkpoint(checkpoint, {"run_id": run.run_id, "epoch": epoch, "trainer": trainer.state(),
                                                 "metrics": record["metrics"], "loss_curve": record["loss_curve"],
                                                 "timing": timing})
        record["status"] = "ok"
    except HarnessError:
        raise
    except Exception as exc:  # a failed run is a result: record why, let the matrix go on
        record["status"] = "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc),
                           "traceback": traceback.format_exc(limit=8)}
    finished = datetime.now(timezone.utc)
    record["timing"] = {
        "train_s": timing["train_s"],
        "eval_s": timing["eval_s"],
        "wall_s": time.perf_counter() - wall_start,
        "train_images_per_s": timing["train_images"] / timing["train_s"] if timing["train_s"] else None,
        "peak_rss_mb": _peak_rss_mb(),
    }
    record["provenance"] = provenance.collect(accelerator, dataset, command=command, started=started,
                                              finished=finished)
    return record
