"""The run schema: what a resolved run config may hold (everything that can change a number), and its checks.

Two levels of checking. The models' validators check shapes, types and names against harness.catalog without
importing any factory, so listing, status and rendering stay fast. `check_components` then checks each
component's arguments against its factory's signature (importing torch and pytorch-metric-learning); every
command that trains or reruns calls it before spending any compute.
Option defaults live here and only here (experiments/defaults.yaml holds the base choices that have none).
"""

from __future__ import annotations

import math

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness import catalog
from harness.errors import ConfigError, suggest


class Strict(BaseModel):
    # strict: a YAML value of the wrong type is an error, never silently coerced ("10" is not 10).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataConfig(Strict):
    dataset: str
    train_per_class: int | None = Field(default=None, gt=0)  # None: the whole training split
    test_per_class: int | None = Field(default=None, gt=0)  # None: the whole test split
    subset_seed: int = 0  # fixed across run seeds: every run of a study sees the same images
    # Held out of the training items, per class, for choices that must not look at the test split.
    val_per_class: int | None = Field(default=None, gt=0)
    # Or held out whole: the last `val_classes` of the seen classes never train; their training items are the
    # validation split (class-disjoint model selection, as in the Metric Learning Reality Check), and their test
    # items are scored nowhere.
    val_classes: int | None = Field(default=None, gt=0)
    # Or one of k class-disjoint folds of the seen classes: {fold: i, folds: k} holds out every k-th seen class
    # from the i-th on (interleaved, so that classes ordered by kind, as CUB's are, spread over every fold). A
    # declared search (harness.search) averages its objective over the k folds.
    val_fold: dict[str, int] | None = None
    image_size: int = Field(default=224, ge=16)  # crop size of image-file datasets (CUB, Cars); unused by tensors
    split: dict[str, Any] = {"name": "all"}  # which classes are seen in training (harness.splits)
    # The training items' labels shuffled among them (one permutation from subset_seed, the same for every run
    # seed): a network trained so learns nothing about classes, the control that says what training alone does.
    permute_labels: bool = False

    @field_validator("split")
    @classmethod
    def _split(cls, spec: dict[str, Any]) -> dict[str, Any]:
        catalog.SPLITS.check_name(spec, "data.split")
        return spec

    @field_validator("dataset")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in catalog.DATASETS:
            raise ConfigError(f"data.dataset: {catalog.DATASETS.unknown(name)}")
        return name

    @field_validator("val_fold")
    @classmethod
    def _fold(cls, fold: dict[str, int] | None) -> dict[str, int] | None:
        if fold is None:
            return fold
        if set(fold) != {"fold", "folds"} or fold["folds"] < 2 or not 0 <= fold["fold"] < fold["folds"]:
            raise ConfigError(f"data.val_fold: expected {{fold: i, folds: k}} with k >= 2 and 0 <= i < k, got "
                              f"{fold}")
        return fold

    @model_validator(mode="after")
    def _one_validation_split(self) -> DataConfig:
        chosen = [k for k in ("val_per_class", "val_classes", "val_fold") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ConfigError(f"data: {' and '.join(chosen)} each hold out a validation split; choose one "
                              "(val_classes or val_fold: whole classes, for class-disjoint model selection)")
        return self


class TrainConfig(Strict):
    epochs: int = Field(ge=0)  # 0: no training (a baseline, evaluated "after epoch 0")
    batch_size: int = Field(ge=1)  # 1 is allowed: a study may ask for the smallest batch that trains
    # Evaluated inside one run: epochs 1, 5, 10 is one run, not three; 0 evaluates the model before any training.
    eval_epochs: list[int] = Field(min_length=1)
    augment: list[Literal["hflip"]] = []  # training-batch augmentations, drawn from the batch-order generator
    # Batches: "random" (a shuffled pass) or {name: m_per_class, m: 4} (PML's MPerClassSampler: batches of
    # batch_size / m classes with m items each).
    sampler: dict[str, Any] = {"name": "random"}
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast of forward passes where the device supports it
    channels_last: bool = False  # memory format of images and convolution weights (faster on GPUs)
    warmup_epochs: int = Field(default=0, ge=0)  # first epochs train only the model's head (its backbone frozen)
    # Whether the loss's own parameters (ProxyAnchor's proxies, a classifier head) are optimised with the model;
    # false reproduces code that never gave them to the optimizer (they keep their initial values).
    optimize_loss: bool = True
    # The learning rate of the loss's own parameters (Proxy Anchor's proxies) as a multiple of the optimizer's:
    # the Proxy Anchor authors' code gives proxies 100 times the backbone's rate; 1 keeps them alike.
    loss_lr_multiplier: float = Field(default=1.0, gt=0)
    # The run_id of a recorded run whose final state (weights, optimizer, batch order, random generators) this run
    # continues from, instead of a fresh model: set by a study's `chains`, so the run_id names the whole history.
    init: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    lr_schedule: dict[str, Any] = {"name": "constant"}  # or {name: step, step_size: 5, gamma: 0.1}, per epoch

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, spec: dict[str, Any]) -> dict[str, Any]:
        catalog.SAMPLERS.check_name(spec, "train.sampler")
        return spec

    @field_validator("lr_schedule")
    @classmethod
    def _schedule_name(cls, spec: dict[str, Any]) -> dict[str, Any]:
        catalog.SCHEDULES.check_name(spec, "train.lr_schedule")
        return spec

    @model_validator(mode="after")
    def _schedule(self) -> TrainConfig:
        if sorted(set(self.eval_epochs)) != self.eval_epochs or min(self.eval_epochs) < 0:
            raise ConfigError(f"train.eval_epochs: must be increasing integers >= 0, got {self.eval_epochs}")
        if self.eval_epochs[-1] != self.epochs:
            raise ConfigError(f"train.eval_epochs: the last evaluation ({self.eval_epochs[-1]}) must be the last "
                              f"epoch (train.epochs = {self.epochs})")
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise ConfigError(f"train.warmup_epochs: {self.warmup_epochs} head-only epochs leave none of the "
                              f"{self.epochs} epochs to train the whole model")
        return self


class EvalConfig(Strict):
    metrics: list[str] = Field(min_length=1)  # on the test items of the seen classes (all classes by default)
    unseen_metrics: list[str] = []  # on the test items of the classes data.split leaves out; recorded as unseen_*
    # Which test items `metrics` score: those of the seen classes, or (the class-disjoint DML protocol on a
    # dataset without its own disjoint split) those of the unseen classes, recorded without a prefix.
    classes: Literal["seen", "unseen"] = "seen"
    knn_k: int = Field(default=3, gt=0)
    # The kNN reference: "clean", one eval-mode pass over the training split; or "training", the embeddings the
    # training steps themselves produced (train mode, weights changing between batches, every batch of every
    # epoch of this run so far), which is what the seed-000 original fitted its kNN on.
    knn_reference: Literal["clean", "training"] = "clean"
    distance: Literal[catalog.DISTANCES] = "euclidean"  # type: ignore[valid-type]
    options: dict[str, Any] = {}  # metric options (n_way, k_shot, n_episodes, n_pairs, ...); see harness.evaluate

    @field_validator("metrics", "unseen_metrics")
    @classmethod
    def _known(cls, names: list[str], info: Any) -> list[str]:
        known = catalog.metric_names()
        for name in names:
            if name not in known:
                raise ConfigError(f"eval.{info.field_name}: unknown metric '{name}'{suggest(name, known)}; "
                                  f"known: {', '.join(known)}")
        return names

    @field_validator("options")
    @classmethod
    def _options(cls, options: dict[str, Any]) -> dict[str, Any]:
        for key in options:
            if key not in catalog.METRIC_OPTIONS:
                raise ConfigError(f"eval.options: unknown option '{key}'{suggest(key, catalog.METRIC_OPTIONS)}; "
                                  f"known: {', '.join(sorted(catalog.METRIC_OPTIONS))}")
        return options


class RunConfig(Strict):
    """Everything that can change a number. Its hash is the run_id; paths and process counts stay outside."""

    seed: int = Field(ge=0, lt=2**63)  # torch.manual_seed takes 0 .. 2**64 - 1; records store it as JSON
    data: DataConfig
    model: dict[str, Any]
    loss: dict[str, Any]
    miner: dict[str, Any] | None = None
    optimizer: dict[str, Any]
    train: TrainConfig
    eval: EvalConfig

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, raw: Any) -> Any:
        """NaN and the infinities are refused wherever they stand: JSON has no spelling for them, so a run's
        identity could not tell them apart (they would all hash as null)."""
        def walk(value: Any, where: str) -> None:
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{where}: {value!r} is not a finite number; give a number such as 0.001")
            if isinstance(value, dict):
                for key, item in value.items():
                    walk(item, f"{where}.{key}" if where else str(key))
            elif isinstance(value, (list, tuple)):
                for index, item in enumerate(value):
                    walk(item, f"{where}[{index}]")

        walk(raw, "")
        return raw

    @model_validator(mode="after")
    def _names(self) -> RunConfig:
        catalog.MODELS.check_name(self.model, "model")
        catalog.LOSSES.check_name(self.loss, "loss")
        if self.miner is not None:
            catalog.MINERS.check_name(self.miner, "miner")
        catalog.OPTIMIZERS.check_name(self.optimizer, "optimizer")
        return self


class ExecutionConfig(Strict):
    """How a run is executed, never what it computes: outside the run_id (a study's or profile's `execution:`)."""

    eval_batch_size: int = Field(default=128, gt=0)  # embedding pass only (CPU convs are fastest in small batches)
    # Keep each run's final weights beside its record (<run_id>.safetensors, sha256 in the record). Saving changes
    # no number, so it is not part of any run_id; a profile's `demo:` entry turns it on for the demo's run alone.
    save_weights: bool = False
    # "cuda": the runs need a GPU and refuse to start without one (the default, "auto", uses the CPU then, and
    # `harness run` says so on its first line).
    device: Literal["auto", "cuda"] = "auto"


def check_components(config: RunConfig) -> None:
    """Every component's arguments against its factory (imports torch): a typo fails before any compute."""
    from harness.models import MODELS, check_model
    from harness.objectives import check_component, has_classifier

    check_model(config.model, "model")
    check_component(config.loss, catalog.LOSSES, "loss")
    if config.miner is not None:
        check_component(config.miner, catalog.MINERS, "miner")
    catalog.OPTIMIZERS.check(config.optimizer, "optimizer")
    catalog.SCHEDULES.check(config.train.lr_schedule, "train.lr_schedule")
    catalog.SPLITS.check(config.data.split, "data.split")
    catalog.SAMPLERS.check(config.train.sampler, "train.sampler")
    sampler_check = getattr(catalog.SAMPLERS.get(config.train.sampler["name"]), "check_config", None)
    if sampler_check is not None:
        sampler_check(config.train.batch_size, **{k: v for k, v in config.train.sampler.items() if k != "name"})
    if config.train.epochs and not getattr(MODELS.get(config.model["name"]), "trainable", True):
        raise ConfigError(f"train.epochs: model '{config.model['name']}' has nothing to train; give it "
                          "train.epochs: 0 and train.eval_epochs: [0] (the raw-input baseline)")
    if config.train.warmup_epochs and not hasattr(MODELS.get(config.model["name"]), "head_parameters"):
        raise ConfigError(f"train.warmup_epochs: model '{config.model['name']}' has no separate head to warm up")
    heads = [m for m in [*config.eval.metrics, *config.eval.unseen_metrics] if m in catalog.HEAD_METRICS]
    if heads and not has_classifier(config.loss):
        raise ConfigError(f"eval.metrics: {heads[0]} needs a loss with a classifier head (e.g. arcface, "
                          f"softmax_ce); loss '{config.loss['name']}' has none")
