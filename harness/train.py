"""One run: a resolved config and its seed in, a run record out (fresh model, loss, optimizer; evaluated on schedule)."""

from __future__ import annotations

import json
import math
import os
import random
import resource
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper, DistributedMinerWrapper
from tqdm.auto import tqdm

from harness import checkpoint as checkpoints
from harness import data as datasets
from harness import pipeline, provenance, store
from harness.catalog import OPTIMIZERS, SCHEDULES
from harness.errors import ConfigError, HarnessError
from harness.evaluate.runs import score_run
from harness.models import build_model, embedding_dim
from harness.objectives import build_loss, build_miner, class_scores, has_classifier
from harness.spec import Run

# Points per epoch kept in the record's loss curve (means over equal windows of steps).
CURVE_POINTS_PER_EPOCH = 10


class RunFailure(Exception):
    """A run that cannot go on (NaN loss...): recorded with status 'failed', and the matrix continues."""


def _distributed(loss_fn: torch.nn.Module, miner: Any, world: int, batch_size: int) -> tuple[Any, Any, bool]:
    """Losses that compare the items of a batch see the whole global batch: pytorch-metric-learning gathers the
    embeddings of every process (and scales the loss by the world size, as DDP averages gradients). A per-item
    loss (a plain classifier head) needs nothing: DDP's average is the global batch's mean."""
    if world == 1:
        return loss_fn, miner, False
    if batch_size % world:
        raise HarnessError(f"train.batch_size {batch_size} is not divisible by the {world} processes; each "
                           "process takes an equal share of a global batch")
    gathered = isinstance(loss_fn, BaseMetricLossFunction)
    if gathered:
        loss_fn = DistributedLossWrapper(loss_fn)
    return loss_fn, DistributedMinerWrapper(miner) if miner is not None else None, gathered


class Trainer:
    """The pieces of one run, built fresh from its config; `train_epoch` is the hot loop."""

    def __init__(self, run: Run, accelerator: Accelerator, dataset: datasets.Dataset, workers: int = 0) -> None:
        cfg = self.cfg = run.config
        self.run, self.accelerator, self.world = run, accelerator, accelerator.num_processes
        set_seed(cfg.seed)
        self.parts = datasets.run_splits(dataset, cfg.data, accelerator.device)
        if cfg.eval.classes == "unseen" and self.parts.unseen is None:
            raise ConfigError("eval.classes: 'unseen' needs a data.split that leaves classes unseen")
        if self.parts.train.kind == "files" and self.world > 1:
            raise HarnessError("image-file datasets run on one process per run here; use --shard to spread runs "
                               "over GPUs")
        self.input_shape = dataset.input_shape(cfg.data.image_size)
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        model = build_model(cfg.model, self.input_shape).to(memory_format=self.memory_format)
        # A classifier or proxy needs as many outputs as there are training classes (CUB trains on 100 of 200).
        loss_fn = build_loss(cfg.loss, num_classes=int(self.parts.train.labels.max()) + 1,
                             embedding_size=embedding_dim(cfg.model, self.input_shape))
        self.needs_pairs = not has_classifier(cfg.loss)
        if cfg.train.epochs:
            # Trainable loss parameters (proxies) are optimised with the model (the seed-000 original left them
            # random, which train.optimize_loss: false reproduces).
            if not cfg.train.optimize_loss:
                loss_fn.requires_grad_(False)
            loss_params = list(loss_fn.parameters()) if cfg.train.optimize_loss else []
            apart = bool(loss_params) and cfg.train.loss_lr_multiplier != 1.0  # the loss's parameters at their rate
            optimizer = OPTIMIZERS.build(cfg.optimizer, list(model.parameters()) + ([] if apart else loss_params))
            if apart:  # a second group: the optimizer's own settings, the learning rate times the multiplier
                optimizer.add_param_group({"params": loss_params,
                                           "lr": optimizer.param_groups[0]["lr"] * cfg.train.loss_lr_multiplier})
            self.model, self.optimizer = accelerator.prepare(model, optimizer)
            self.scheduler = SCHEDULES.build(cfg.train.lr_schedule, self.optimizer)
        else:  # a baseline: evaluated as built, nothing to optimise (the raw input has no parameters, which
            # DDP refuses to wrap): the main process evaluates it alone
            self.model, self.optimizer, self.scheduler = model.to(accelerator.device), None, None
        self.head = loss_fn.to(accelerator.device)  # the unwrapped loss: its get_logits (if any) classifies
        self.loss_fn, self.miner, self.gathered = _distributed(loss_fn, build_miner(cfg.miner), self.world,
                                                               cfg.train.batch_size)
        self.loss_params = [p for p in self.loss_fn.parameters() if p.requires_grad]
        # Batch order has its own generator, so evaluation (or anything else drawing random numbers) cannot move it.
        self.order = torch.Generator().manual_seed(cfg.seed)
        self.pipeline = pipeline.for_split(self.parts.train, cfg, self.order, device=accelerator.device,
                                           memory_format=self.memory_format, world=self.world,
                                           rank=accelerator.process_index, workers=workers)
        unwrapped = self.accelerator.unwrap_model(self.model)
        self.backbone = list(unwrapped.backbone_parameters()) if cfg.train.warmup_epochs else []
        self.trainable = [p.requires_grad for p in self.backbone]  # frozen BatchNorm stays frozen after warm-up
        self.autocast = dict(device_type=accelerator.device.type, dtype=torch.bfloat16,
                             enabled=cfg.train.precision == "bf16")
        # eval.knn_reference "training": every training batch's embeddings and labels, as the steps saw them.
        self.collect = cfg.eval.knn_reference == "training"
        if self.collect and self.world > 1:
            raise HarnessError("eval.knn_reference 'training' collects one process's training embeddings; run it "
                               "on one process (use --shard to spread runs over GPUs)")
        self.collected: list[tuple[torch.Tensor, torch.Tensor]] = []

    def warm_up(self, epoch: int) -> None:
        """Head-only epochs first (the backbone's weights do not move), then the whole model."""
        for param, trainable in zip(self.backbone, self.trainable):
            param.requires_grad_(trainable and epoch > self.cfg.train.warmup_epochs)

    def step(self, batch: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(**self.autocast):
            embeddings = self.model(batch)
        embeddings = embeddings.float()  # losses and miners in full precision
        if self.collect:
            self.collected.append((embeddings.detach().cpu(), labels.detach().cpu()))
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
        return math.ceil(len(self.parts.train.labels) / self.cfg.train.batch_size)

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
        for step, (batch, labels) in enumerate(self.pipeline.batches(epoch), first_step + 1):
            with_pairs += int(len(torch.unique(labels)) < len(labels))
            value = float(self.step(batch, labels))  # the global batch's loss, the same on every process
            if not math.isfinite(value):
                raise RunFailure(f"loss became {value} at epoch {epoch}, step {step}")
            running, count, seen = running + value, count + 1, seen + len(labels)
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
            # what a resumed run needs to fit the same kNN reference (eval.knn_reference 'training')
            "collected": [torch.cat(part) for part in zip(*self.collected)] if self.collected else [],
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
        collected = state.get("collected") or []
        self.collected = [(collected[0], collected[1])] if collected else []

    def continue_from(self, saved: dict[str, Any]) -> None:
        """Carry a parent run's weights, optimizer, schedule, batch order and random generators into this run, and
        its loss's state when the loss is the same (a chain that switches losses starts the new one fresh, as one
        script switching losses would)."""
        state = dict(saved["trainer"], collected=[])  # the kNN reference of a run is its own training pass
        if saved.get("loss") != self.cfg.loss:
            state["loss"] = self.loss_fn.state_dict()
        try:
            self.load_state(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise HarnessError(f"run {self.run.run_id} cannot continue from run {saved['run_id']}: "
                               f"{' '.join(str(exc).split())[:200]} (the two runs must build the same network "
                               "and optimizer)") from None

    @torch.no_grad()
    def embed(self, split: datasets.Split) -> np.ndarray:
        """A clean eval-mode pass (no dropout, no gradient) over a whole split, each image decoded once."""
        model = self.accelerator.unwrap_model(self.model)  # no DDP hooks: only the main process evaluates
        model.eval()
        out = []
        for chunk in self.pipeline.eval_batches(split, self.run.execution.eval_batch_size):
            with torch.autocast(**self.autocast):
                out.append(model(chunk).float().cpu())
        model.train()
        embeddings = torch.cat(out).numpy()
        if not np.isfinite(embeddings).all():  # the model diverged: a result of this config, not a fault
            raise RunFailure("the model's embeddings became NaN or infinite")
        return embeddings

    def class_scores(self, embeddings: np.ndarray) -> torch.Tensor:
        return class_scores(self.head, torch.from_numpy(embeddings).to(self.accelerator.device))

    def evaluate(self) -> dict[str, float]:
        """The run's eval config scored on its splits (harness.evaluate.runs says which metric sees which items)."""
        parts = self.parts
        head = self.class_scores if has_classifier(self.cfg.loss) else None
        return score_run(self.cfg.eval, self.embed, train=parts.train, test=parts.test, val=parts.val,
                         unseen=parts.unseen, head=head, training_pass=self.training_pass())

    def training_pass(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The embeddings and labels collected during this run's training steps (eval.knn_reference 'training')."""
        if not self.collect:
            return None
        if not self.collected:
            return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
        return (torch.cat([e for e, _ in self.collected]).numpy(), torch.cat([l for _, l in self.collected]).numpy())

    def data_facts(self, dataset: datasets.Dataset) -> dict[str, Any]:
        parts = self.parts
        return {"train_size": len(parts.train), "test_size": len(parts.test),
                "val_size": len(parts.val) if parts.val is not None else 0,
                "unseen_test_size": len(parts.unseen) if parts.unseen is not None else 0,
                "seen_classes": parts.seen, "num_classes": dataset.num_classes,
                **({"val_classes": parts.val_classes} if parts.val_classes else {}),
                "input_shape": list(self.input_shape), "normalisation": {"mean": dataset.mean, "std": dataset.std}}


def workers_setting() -> int:
    """DataLoader workers for image files ($HARNESS_WORKERS); every sample has its own seed, so the count changes
    speed, never a number."""
    text = os.environ.get("HARNESS_WORKERS")
    if not text:
        return min(4, provenance.usable_cpus())
    if not text.strip().isdigit() or int(text) > 256:
        raise HarnessError(f"HARNESS_WORKERS={text!r}: expected a whole number of DataLoader worker processes "
                           "between 0 and 256 (0 = decode in the training process)")
    return int(text)


def new_accelerator() -> Accelerator:
    """The one way a run's Accelerator is made: the GPU when there is one, else the CPU; its settings checked
    (check_accelerator). Only the Accelerator touches devices."""
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    check_accelerator(accelerator)
    return accelerator


def device_words(accelerator: Accelerator) -> str:
    """The device a launch will use and why, in one line: a GPU by name, or the CPU with the reason (no CUDA in
    this build of torch, or a CUDA build that finds no usable GPU or driver)."""
    if accelerator.device.type == "cuda":
        index = accelerator.device.index or 0
        return f"device: {torch.cuda.get_device_name(index)} (cuda:{index}; CUDA {torch.version.cuda})"
    if torch.version.cuda is None:
        return "device: cpu (this build of torch has no CUDA)"
    return (f"device: cpu (this torch is built for CUDA {torch.version.cuda} but finds no usable GPU: no GPU, or "
            "a driver too old for it; `nvidia-smi` says which)")


def check_accelerator(accelerator: Accelerator) -> None:
    """Refuse Accelerate settings that would change numbers without changing the run's config (and so its id):
    precision and the rest belong in the study file (train.precision), where they are part of the run."""
    problems = []
    # The environment is read too: Accelerate's state is created once per process and ignores it after that.
    precision = {str(accelerator.mixed_precision), os.environ.get("ACCELERATE_MIXED_PRECISION", "no")} - {"no", ""}
    if precision:
        problems.append(f"mixed precision {sorted(precision)[0]} (ACCELERATE_MIXED_PRECISION or an accelerate "
                        "config; use train.precision: bf16 in the study instead)")
    if accelerator.gradient_accumulation_steps != 1:
        problems.append(f"gradient accumulation over {accelerator.gradient_accumulation_steps} steps "
                        "(ACCELERATE_GRADIENT_ACCUMULATION_STEPS)")
    dynamo = getattr(accelerator.state, "dynamo_plugin", None)
    if dynamo is not None and str(getattr(dynamo, "backend", "NO")).upper() not in ("NO", "DYNAMOBACKEND.NO"):
        problems.append(f"torch.compile backend {dynamo.backend} (ACCELERATE_DYNAMO_BACKEND)")
    if problems:
        raise HarnessError(f"Accelerate is set to {problems[0]}; this would change numbers without changing "
                           "the run ids: unset it and run again")


def write_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """The model's state dict as safetensors at `path` (written atomically, with string `metadata` in its header),
    and what the record says of it."""
    from safetensors.torch import save

    from harness.files import atomic_write, bytes_hash

    # Contiguous CPU copies: safetensors stores plain buffers (no views, no pickled objects, nothing to execute).
    tensors = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    # One metadata key holding sorted JSON: safetensors writes a map of several keys in a random order, and the
    # file's sha256 must be the same for the same weights.
    content = save(tensors, metadata={"harness": json.dumps(metadata or {}, sort_keys=True)})
    atomic_write(Path(path), content)
    return {"file": Path(path).name, "sha256": bytes_hash(content), "format": "safetensors", "tensors": len(tensors)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _train_epochs(trainer: Trainer, record: dict[str, Any], timing: dict[str, float], first_epoch: int,
                  bar: Any, checkpoint: Path | None) -> None:
    cfg, accelerator = trainer.cfg, trainer.accelerator
    # Epoch 0 is the model as built, before any step: the untrained baseline of any run that asks for it.
    for epoch in range(0 if first_epoch == 1 else first_epoch, cfg.train.epochs + 1):
        if epoch > 0:
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
        if checkpoint is not None and 0 < epoch < cfg.train.epochs:
            checkpoints.save(checkpoint, {"run_id": trainer.run.run_id, "epoch": epoch, "trainer": trainer.state(),
                                          "metrics": record["metrics"], "loss_curve": record["loss_curve"],
                                          "timing": timing})


def execute(run: Run, *, data_root: Path | None = None, progress: bool = True, command: list[str] | None = None,
            accelerator: Accelerator | None = None, checkpoint: Path | None = None,
            init_state: Path | None = None, save_state: Path | None = None,
            save_weights: Path | None = None) -> store.RunRecord:
    """Train and evaluate one run; return its record (status 'ok', or 'failed' for a RunFailure: a NaN loss, no
    positive pair, diverged embeddings). Anything else (a full disk, a bad setting, a bug) propagates: a fault
    of the machine or the invocation leaves no record, and the next run of the command retries.

    With `checkpoint`, the run's state is saved there after every epoch, and a run that finds a checkpoint of
    itself continues from it: killed at any moment and restarted, it ends with the same metrics and loss curve
    as an uninterrupted run (on CPU, bit for bit).

    A run with train.init starts from the final state its parent left in `init_state`; with `save_state`, a
    finished run leaves its own final state there for the runs that continue from it.

    With `save_weights`, a finished run saves its model's final weights there (safetensors) and the record names
    the file and its sha256 (harness.demo serves such runs).
    """
    started = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    if accelerator is None:
        accelerator = new_accelerator()
    else:
        check_accelerator(accelerator)
    dataset = datasets.load(run.config.data.dataset, data_root)
    workers = workers_setting()
    cfg = run.config
    record: dict[str, Any] = {"schema_version": store.SCHEMA_VERSION, "run_id": run.run_id, "study": run.study,
                              "profile": run.profile, "axes": run.axes, "seed": cfg.seed,
                              "config": run.config_dict(), "status": "running", "metrics": [], "loss_curve": []}
    if run.search is not None:
        record["search"] = dict(run.search)
    timing = {"train_s": 0.0, "eval_s": 0.0, "train_images": 0}
    try:
        trainer = Trainer(run, accelerator, dataset, workers=workers)
        record["data"] = trainer.data_facts(dataset)
        network = trainer.accelerator.unwrap_model(trainer.model)
        if getattr(network, "weights_source", None):  # pretrained weights: which file, by content
            record["model_weights"] = {"source": str(network.weights_source), "sha256": network.weights_sha256}
        bar = tqdm(total=cfg.train.epochs * trainer.steps_per_epoch, disable=not progress, unit="step", leave=False,
                   desc=f"{run.study}/{run.run_id[:8]} " + " ".join(f"{v}" for v in run.axes.values())
                   + f" seed {cfg.seed}", mininterval=1.0)
        first_epoch = 1
        resumed = checkpoints.load(checkpoint, run.run_id)
        if resumed is not None:
            try:
                trainer.load_state(resumed["trainer"])
            except Exception as exc:  # written by other code (a changed model): start over, keep the file
                checkpoints.set_aside(checkpoint, f"{type(exc).__name__}: {' '.join(str(exc).split())[:150]}")
                trainer, resumed = Trainer(run, accelerator, dataset, workers=workers), None
        if resumed is not None:
            record["metrics"], record["loss_curve"] = resumed["metrics"], resumed["loss_curve"]
            timing = dict(resumed["timing"])
            first_epoch = resumed["epoch"] + 1
            record["resumed_from_epoch"] = resumed["epoch"]
            bar.update(resumed["epoch"] * trainer.steps_per_epoch)
        elif cfg.train.init is not None:
            trainer.continue_from(checkpoints.final_state(init_state, cfg.train.init, run.run_id))
        with bar:
            _train_epochs(trainer, record, timing, first_epoch, bar, checkpoint)
        record["status"] = "ok"
        if save_state is not None and accelerator.is_main_process:
            checkpoints.save(save_state, {"run_id": run.run_id, "loss": cfg.loss, "trainer": trainer.state()})
        if save_weights is not None and accelerator.is_main_process:
            # The file carries what its training scored, so weights found without their record still say it.
            record["weights"] = write_weights(save_weights, trainer.accelerator.unwrap_model(trainer.model),
                                              {"run_id": run.run_id, "metrics": json.dumps(record["metrics"])})
    except RunFailure as exc:  # what the science produced: a result, recorded; the matrix goes on
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
                                              finished=finished, overrides=run.overrides,
                                              preregistration=run.preregistration)
    return store.validate(record)
