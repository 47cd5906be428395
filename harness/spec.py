"""Experiment files -> validated, frozen run configs: load YAML, apply a profile, expand the matrix, hash each run."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import ConfigError, suggest, yaml_number_hint

# $HARNESS_EXPERIMENTS points the CLI at another folder of study files (a scratch copy, a fork's studies).
EXPERIMENTS_DIR = Path(os.environ.get("HARNESS_EXPERIMENTS") or Path(__file__).resolve().parent.parent / "experiments")
DEFAULTS_FILE = "defaults.yaml"
PROFILES = ("full", "quick", "smoke")
DEFAULT_PROFILE = "quick"


class _Strict(BaseModel):
    # strict: a YAML value of the wrong type is an error, never silently coerced ("10" is not 10).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataConfig(_Strict):
    dataset: str
    train_per_class: int | None = Field(default=None, gt=0)
    test_per_class: int | None = Field(default=None, gt=0)
    subset_seed: int = 0  # fixed across run seeds: every run of a study sees the same images
    # Held out of the training items, per class, for choices that must not look at the test split.
    val_per_class: int | None = Field(default=None, gt=0)
    image_size: int = Field(default=224, ge=16)  # crop size of image-file datasets (CUB, Cars); unused by tensors
    split: dict[str, Any] = {"name": "all"}  # which classes are seen in training (harness.splits)

    @field_validator("split")
    @classmethod
    def _split(cls, spec: dict[str, Any]) -> dict[str, Any]:
        from harness import splits

        splits.check(spec)
        return spec

    @field_validator("dataset")
    @classmethod
    def _known(cls, name: str) -> str:
        from harness.data import DATASETS

        if name not in DATASETS:
            raise ConfigError(f"data.dataset: {DATASETS.unknown(name)}")
        return name


class TrainConfig(_Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(ge=1)  # 1 is allowed: a study may ask for the smallest batch that trains
    eval_epochs: list[int] = Field(min_length=1)  # evaluated inside one run: epochs 1, 5, 10 is one run, not three
    augment: list[Literal["hflip"]] = []  # training-batch augmentations, drawn from the batch-order generator
    # Batches: "random" (a shuffled pass) or {name: m_per_class, m: 4} (PML's MPerClassSampler: batches of
    # batch_size / m classes with m items each).
    sampler: dict[str, Any] = {"name": "random"}
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast of forward passes where the device supports it
    channels_last: bool = False  # memory format of images and convolution weights (faster on GPUs)
    warmup_epochs: int = Field(default=0, ge=0)  # first epochs train only the model's head (its backbone frozen)
    lr_schedule: dict[str, Any] = {"name": "constant"}  # or {name: step, step_size: 5, gamma: 0.1}, per epoch

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, spec: dict[str, Any]) -> dict[str, Any]:
        from harness.train import SAMPLERS

        SAMPLERS.check(spec, "train.sampler")
        return spec

    @field_validator("lr_schedule")
    @classmethod
    def _schedule_name(cls, spec: dict[str, Any]) -> dict[str, Any]:
        from harness.train import SCHEDULES

        SCHEDULES.check(spec, "train.lr_schedule")
        return spec

    @model_validator(mode="after")
    def _schedule(self) -> TrainConfig:
        if sorted(set(self.eval_epochs)) != self.eval_epochs or min(self.eval_epochs) < 1:
            raise ConfigError(f"train.eval_epochs: must be increasing positive integers, got {self.eval_epochs}")
        if self.eval_epochs[-1] != self.epochs:
            raise ConfigError(f"train.eval_epochs: the last evaluation ({self.eval_epochs[-1]}) must be the last "
                              f"epoch (train.epochs = {self.epochs})")
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(f"train.warmup_epochs: {self.warmup_epochs} head-only epochs leave none of the "
                              f"{self.epochs} epochs to train the whole model")
        return self


class EvalConfig(_Strict):
    metrics: list[str] = Field(min_length=1)  # on the test items of the seen classes (all classes by default)
    unseen_metrics: list[str] = []  # on the test items of the classes data.split leaves out; recorded as unseen_*
    # Which test items `metrics` score: those of the seen classes, or (the class-disjoint DML protocol on a
    # dataset without its own disjoint split) those of the unseen classes, recorded without a prefix.
    classes: Literal["seen", "unseen"] = "seen"
    knn_k: int = Field(default=3, gt=0)
    distance: Literal["euclidean", "cosine"] = "euclidean"
    batch_size: int = Field(default=128, gt=0)  # embedding pass only; does not change any number
    options: dict[str, Any] = {}  # metric options (n_way, k_shot, n_episodes, n_pairs, ...); see harness.evaluate

    @field_validator("metrics", "unseen_metrics")
    @classmethod
    def _known(cls, names: list[str], info: Any) -> list[str]:
        from harness.evaluate import HEAD_METRICS, METRICS

        for name in names:
            if name not in METRICS and name not in HEAD_METRICS:
                known = sorted([*METRICS, *HEAD_METRICS])
                raise ConfigError(f"eval.{info.field_name}: unknown metric '{name}'{suggest(name, known)}; "
                                  f"known: {', '.join(known)}")
        return names

    @field_validator("options")
    @classmethod
    def _options(cls, options: dict[str, Any]) -> dict[str, Any]:
        from harness.evaluate import OPTIONS

        for key in options:
            if key not in OPTIONS:
                raise ConfigError(f"eval.options: unknown option '{key}'{suggest(key, OPTIONS)}; "
                                  f"known: {', '.join(sorted(OPTIONS))}")
        return options


class RunConfig(_Strict):
    """Everything that can change a number. Its hash is the run_id; paths and process counts stay outside."""

    seed: int
    data: DataConfig
    model: dict[str, Any]
    loss: dict[str, Any]
    miner: dict[str, Any] | None = None
    optimizer: dict[str, Any]
    train: TrainConfig
    eval: EvalConfig

    @model_validator(mode="after")
    def _components(self) -> RunConfig:
        from harness.models import MODELS, check_model
        from harness.objectives import LOSSES, MINERS, check_component
        from harness.train import OPTIMIZERS

        from harness.evaluate import HEAD_METRICS
        from harness.objectives import has_classifier

        check_model(self.model, "model")
        check_component(self.loss, LOSSES, "loss")
        if self.train.warmup_epochs and not hasattr(MODELS.get(self.model["name"]), "head_parameters"):
            raise ConfigError(f"train.warmup_epochs: model '{self.model['name']}' has no separate head to warm up")
        heads = [m for m in [*self.eval.metrics, *self.eval.unseen_metrics] if m in HEAD_METRICS]
        if heads and not has_classifier(self.loss):
            raise ConfigError(f"eval.metrics: {heads[0]} needs a loss with a classifier head (e.g. arcface, "
                              f"softmax_ce); loss '{self.loss['name']}' has none")
        if self.miner is not None:
            check_component(self.miner, MINERS, "miner")
        OPTIMIZERS.check(self.optimizer, "optimizer")
        return self


class SelectSpec(_Strict):
    """Keep, of the cells that have all of `axes`, only the best by `by` (mean over seeds at the last epoch).

    `by` should be a validation metric (val_...): choosing on the test split would flatter the chosen cell.
    Cells without those axes (a baseline) are kept as they are.
    """

    axes: list[str] = Field(min_length=1)
    by: str


class TableSpec(_Strict):
    name: str
    metric: str
    rows: str  # a matrix axis
    columns: str  # "epoch" or a matrix axis
    caption: str
    percent: bool = True
    epoch: Literal["all", "last"] = "all"  # "last": only the last evaluated epoch (when columns is not "epoch")
    where: dict[str, Any] = {}  # axis -> label: only runs with these labels
    select: SelectSpec | None = None  # only the best cell of a grid (and runs outside the grid)


class FigureSpec(_Strict):
    name: str
    kind: Literal["line", "heatmap"] = "line"
    x: str  # "epoch" or a matrix axis
    hue: str | None = None  # a matrix axis, or "metric" (all metrics in one panel); line figures only
    y: str | None = None  # heatmaps: the axis of the rows
    metrics: list[str] = Field(min_length=1)  # a heatmap shows one metric at the last evaluated epoch
    where: dict[str, Any] = {}  # axis -> label: only runs with these labels
    select: SelectSpec | None = None
    caption: str

    @model_validator(mode="after")
    def _kind(self) -> FigureSpec:
        if self.kind == "line" and self.hue is None:
            raise ConfigError(f"report.figures '{self.name}': a line figure needs 'hue' (an axis or 'metric')")
        if self.kind == "heatmap" and (self.y is None or len(self.metrics) != 1):
            raise ConfigError(f"report.figures '{self.name}': a heatmap needs 'y' (an axis) and exactly one metric")
        return self


class Comparison(_Strict):
    theirs: str | None  # a CSV column; null for a column of ours they have no counterpart for
    ours: str  # our metric
    label: str  # the column header


class ReferenceSpec(_Strict):
    """Numbers the original authors reported, shown beside ours."""

    file: str  # relative to experiments/
    source: str
    metric: str  # our metric they correspond to
    value_column: str | None = None  # with `columns`: one metric per epoch
    axis: str  # our matrix axis that their rows correspond to
    rows: str  # CSV column holding their row labels
    columns: str | None = None  # CSV column holding their epochs; or, without it, `values` at the last epoch
    values: list[Comparison] = []  # several metrics side by side, theirs vs ours, at the last epoch
    row_map: dict[str, Any] = {}  # their row names -> our axis labels
    where: dict[str, Any] = {}  # axis -> label (or list of labels): our runs in their setting (their m and s)
    their_where: dict[str, Any] = {}  # CSV column -> value: their rows in the setting compared
    percent_in_file: bool = True
    setting: str  # their setting, in a few words, for the caption
    dataset: str  # their dataset, by our name: the caption warns when ours differs

    @model_validator(mode="after")
    def _shape(self) -> ReferenceSpec:
        if (self.columns is None) == (not self.values) or (self.columns is not None) != (self.value_column is not None):
            raise ConfigError("report.reference: give either `columns` and `value_column` (one metric per epoch) "
                              "or `values` (several metrics at the last epoch)")
        return self


class ReportSpec(_Strict):
    axis_labels: dict[str, str] = {}  # axis -> how tables and figures name it ("m" -> "margin m")
    tables: list[TableSpec] = []
    figures: list[FigureSpec] = []
    reference: ReferenceSpec | None = None


# One axis: a list of values set at the config path named like the axis, or {path: config.path, values: [...]}
# when the axis's short name (a table header, a figure label) differs from where its values go.
AxisSpec = list[Any] | dict[str, Any]
# A matrix: one mapping of axes (their product), or a list of such blocks (the union of their products, e.g. a
# baseline without the grid's axes next to the grid).
MatrixSpec = dict[str, AxisSpec] | list[dict[str, AxisSpec]]


class ProfileSpec(_Strict):
    description: str
    config: dict[str, Any] = {}
    matrix: MatrixSpec = {}
    seeds: list[int] | None = None


class StudyFile(_Strict):
    study: str
    title: str
    question: str
    anchors: dict[str, Any] = {}  # a place for YAML anchors (&name) that matrix values refer to; not read
    config: dict[str, Any] = {}
    matrix: MatrixSpec = {}
    seeds: list[int] = Field(min_length=1)
    profiles: dict[str, ProfileSpec]
    report: ReportSpec = ReportSpec()

    @model_validator(mode="after")
    def _profiles(self) -> StudyFile:
        missing = [p for p in PROFILES if p not in self.profiles]
        extra = [p for p in self.profiles if p not in PROFILES]
        if missing or extra:
            raise ConfigError(f"profiles: a study declares exactly {', '.join(PROFILES)}"
                              + (f"; missing {', '.join(missing)}" if missing else "")
                              + (f"; unknown {', '.join(extra)}{suggest(extra[0], PROFILES)}" if extra else ""))
        return self


@dataclass(frozen=True)
class Run:
    """One resolved run: its identity, the matrix cell it fills, and its frozen config."""

    study: str
    profile: str
    run_id: str
    axes: dict[str, Any]  # axis name -> label of this run's value (a component's name, or the scalar)
    config: RunConfig

    @property
    def seed(self) -> int:
        return self.config.seed

    def config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    spec: StudyFile
    profile: str
    runs: list[Run]
    axes: dict[str, list[Any]]  # axis -> its labels in declared order, over every block of the matrix

    @property
    def description(self) -> str:
        return self.spec.profiles[self.profile].description


# Options added after the first records were written, with their defaults. At the default they are left out of
# the identity, so a new option never orphans existing records; set to anything else, they change the run_id.
ADDED_OPTIONS = {("data", "split"): {"name": "all"}, ("data", "val_per_class"): None,
                 ("eval", "unseen_metrics"): [], ("eval", "options"): {},
                 ("train", "augment"): [], ("train", "sampler"): {"name": "random"}, ("train", "precision"): "fp32",
                 ("train", "channels_last"): False, ("train", "warmup_epochs"): 0, ("eval", "classes"): "seen",
                 ("data", "image_size"): 224, ("train", "lr_schedule"): {"name": "constant"}}


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that names a run: everything, less added options at their defaults."""
    out = copy.deepcopy(dict(config))
    for (section, key), default in ADDED_OPTIONS.items():
        if section in out and key in out[section] and out[section][key] == default:
            del out[section][key]
    return out


def run_id(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of a resolved config (canonical JSON: sorted keys, no whitespace)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override nested mappings key by key; anything else (lists, scalars, None) replaces.

    A component naming another `name` replaces the base one whole: the default model's arguments must not
    leak into a different model (defaults' embedding_dim 128 would add a layer to a network meant to end at
    its pooled features).
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        base_value = merged.get(key)
        other_component = (isinstance(value, Mapping) and isinstance(base_value, Mapping) and "name" in value
                           and "name" in base_value and value["name"] != base_value["name"])
        if isinstance(value, Mapping) and isinstance(base_value, Mapping) and not other_component:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _set_path(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"matrix.{path}: '{key}' is not a mapping in the config")
    node[leaf] = copy.deepcopy(value)


def _get_path(config: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


_MISSING = object()


def _cell(axis: str, value: Any, path: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(label, {config path: value}) for one axis value.

    A plain value (scalar or component mapping) is set at the axis's config path (its name unless given) and
    labelled by itself or its `name`. A mapping {label: ..., set: {path: value, ...}} sets several paths
    together (a loss with its miner).
    """
    path = path or axis
    if isinstance(value, Mapping) and "set" in value:
        if set(value) != {"label", "set"} or not isinstance(value["set"], Mapping) or not value["set"]:
            raise ConfigError(f"matrix.{axis}: a paired value has exactly 'label' and a non-empty 'set' mapping, "
                              f"got keys {sorted(value)}")
        return value["label"], dict(value["set"])
    if isinstance(value, Mapping):
        if "name" not in value:
            raise ConfigError(f"matrix.{axis}: mapping values need a 'name' to label them, got {dict(value)}")
        return value["name"], {path: value}
    return value, {path: value}


Block = dict[str, tuple[str, list[Any]]]  # axis -> (config path, values)


def _axis(axis: str, spec: Any) -> tuple[str, list[Any]]:
    if isinstance(spec, list):
        values, path = spec, axis
    elif isinstance(spec, Mapping) and set(spec) == {"path", "values"} and isinstance(spec["values"], list) \
            and isinstance(spec["path"], str):
        values, path = spec["values"], spec["path"]
    else:
        raise ConfigError(f"matrix.{axis}: an axis is a list of values or {{path: config.path, values: [...]}}")
    if not values:
        raise ConfigError(f"matrix.{axis}: empty axis (the matrix would have no runs)")
    return path, values


def _blocks(study_matrix: Any, profile_matrix: Any) -> list[Block]:
    """The matrix as blocks of axes. A profile's list replaces the study's matrix; a profile's mapping replaces
    same-named axes in every block and adds axes found in none of them to every block."""
    def parse(block: Mapping[str, Any]) -> Block:
        return {axis: _axis(axis, spec) for axis, spec in block.items()}

    if isinstance(profile_matrix, list):
        return [parse(b) for b in profile_matrix]
    blocks = [parse(b) for b in (study_matrix if isinstance(study_matrix, list) else [study_matrix])]
    override = parse(profile_matrix)
    known = {axis for block in blocks for axis in block}
    for block in blocks:
        for axis, value in override.items():
            if axis in block or axis not in known:
                block[axis] = value
    return blocks


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: YAML syntax error: {problem}") from None


def _allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names of the nested pydantic model at `loc`, for suggesting a fix to an unknown key."""
    for key in loc:
        field = model.model_fields.get(str(key))
        if field is None:  # a mapping key or a list index: the same model continues below it
            continue
        candidates = [field.annotation, *get_args(field.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"unknown key '{key}'{suggest(loc[-1], allowed)}; allowed: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"missing key '{key}'"
    got = error.get("input")
    return f"{key}: {error['msg'].lower()} (got {type(got).__name__} {got!r}){yaml_number_hint(got)}"


def study_path(name: str, experiments: Path | None = None) -> Path:
    experiments = experiments or EXPERIMENTS_DIR
    known = sorted(p.stem for p in experiments.glob("*.yaml") if p.name != DEFAULTS_FILE)
    if name not in known:
        raise ConfigError(f"unknown study '{name}'{suggest(name, known)}; known: {', '.join(known)}")
    return experiments / f"{name}.yaml"


def list_studies(experiments: Path | None = None) -> list[str]:
    experiments = experiments or EXPERIMENTS_DIR
    return sorted(p.stem for p in experiments.glob("*.yaml") if p.name != DEFAULTS_FILE)


def load_study_file(path: Path) -> StudyFile:
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, StudyFile)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if spec.study != path.stem:
        raise ConfigError(f"{path}: study: '{spec.study}' must match the file name '{path.stem}'")
    return spec


def load(name: str, profile: str = DEFAULT_PROFILE, experiments: Path | None = None) -> Study:
    """Validate a study and expand its matrix for one profile; any problem is a ConfigError naming file and key."""
    experiments = experiments or EXPERIMENTS_DIR
    path = study_path(name, experiments)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'{suggest(profile, PROFILES)}; known: {', '.join(PROFILES)}")
    spec = load_study_file(path)
    defaults = _read_yaml(experiments / DEFAULTS_FILE) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{experiments / DEFAULTS_FILE}: expected a mapping at the top level")
    chosen = spec.profiles[profile]
    base = deep_merge(deep_merge(defaults, spec.config), chosen.config)
    try:
        blocks = _blocks(spec.matrix, chosen.matrix)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    seeds = chosen.seeds if chosen.seeds is not None else spec.seeds
    if not seeds:
        raise ConfigError(f"{path}: seeds: empty list (the matrix would have no runs)")

    def origin(loc: Sequence[str]) -> str:
        for label, source in ((f"profiles.{profile}.config", chosen.config), ("config", spec.config)):
            if _get_path(source, loc) is not _MISSING:
                return f"{path}: {label}."
        for block in blocks:
            for axis, (axis_path, values) in block.items():
                paths = {p for v in values for p in _cell(axis, v, axis_path)[1]}
                if any(".".join(loc).startswith(p) for p in paths):
                    return f"{path}: matrix.{axis} -> "
        if _get_path(defaults, loc) is not _MISSING:
            return f"{experiments / DEFAULTS_FILE}: "
        return f"{path} (profile {profile}): "

    runs: list[Any] = []  # run ids in matrix order, then the runs
    by_id: dict[str, Run] = {}
    seen = set()
    order: dict[str, list[Any]] = {}
    for block in blocks:
        for combo in itertools.product(*(values for _, values in block.values())):
            axes, assignments = {}, {}
            for (axis, (axis_path, _)), value in zip(block.items(), combo):
                try:
                    axes[axis], paths = _cell(axis, value, axis_path)
                except ConfigError as exc:
                    raise ConfigError(f"{path}: {exc}") from None
                assignments.update(paths)
                if axes[axis] not in order.setdefault(axis, []):
                    order[axis].append(axes[axis])
            cell = tuple(sorted(axes.items(), key=lambda kv: kv[0]))
            if cell in seen:
                raise ConfigError(f"{path}: matrix: two cells share the labels {dict(cell)}; give them distinct "
                                  "labels")
            seen.add(cell)
            for seed in seeds:
                resolved = copy.deepcopy(base)
                # Whole components first, then paths inside them: {loss: {name: arcface}} before loss.m.
                for key, value in sorted(assignments.items(), key=lambda kv: kv[0].count(".")):
                    try:
                        _set_path(resolved, key, value)
                    except ConfigError as exc:
                        raise ConfigError(f"{path}: {exc}") from None
                resolved["seed"] = seed
                try:
                    config = RunConfig.model_validate(resolved)
                except ValidationError as exc:
                    loc = [str(p) for p in exc.errors()[0]["loc"]]
                    raise ConfigError(f"{origin(loc)}{_describe(exc, RunConfig)}") from None
                except ConfigError as exc:
                    loc = str(exc).split(":")[0].split(".")
                    raise ConfigError(f"{origin(loc)}{exc}") from None
                rid = run_id(identity(config.model_dump(mode="json")))
                if rid in by_id:
                    # The same run reached from two blocks (the default setting of two one-factor sweeps) is one
                    # run carrying the labels of both; a label that disagrees is an error.
                    merged = dict(by_id[rid].axes)
                    for axis, label in axes.items():
                        if merged.setdefault(axis, label) != label:
                            raise ConfigError(f"{path}: matrix: one config is labelled {axis} = {merged[axis]!r} "
                                              f"in one block and {label!r} in another")
                    by_id[rid] = Run(spec.study, profile, rid, merged, config)
                    continue
                by_id[rid] = Run(spec.study, profile, rid, axes, config)
                runs.append(rid)
    runs = [by_id[rid] for rid in runs]
    _check_report(path, spec, order)
    return Study(spec.study, path, spec, profile, runs, order)


def _check_report(path: Path, spec: StudyFile, order: Mapping[str, list[Any]]) -> None:
    """Every axis and metric a table, figure or reference names must exist (a typo fails at load, not at render)."""
    from harness.evaluate import result_names

    axes = set(order) | {"epoch"}
    known_metrics = result_names()
    # `where` may name an axis that only some profiles have (runs without it are kept).
    anywhere = axes | {axis for m in [spec.matrix, *(p.matrix for p in spec.profiles.values())]
                       for block in (m if isinstance(m, list) else [m]) for axis in block}

    def check_axis(where: str, value: str | None, extra: Sequence[str] = ()) -> None:
        if value is not None and value not in axes and value not in extra:
            raise ConfigError(f"{path}: {where}: unknown axis '{value}'{suggest(value, axes)}; "
                              f"axes: {', '.join(sorted(axes))}")

    def check_metric(where: str, metric: str) -> None:
        if metric not in known_metrics:
            raise ConfigError(f"{path}: {where}: unknown metric '{metric}'{suggest(metric, known_metrics)}")

    report = spec.report
    for kind, items in (("tables", report.tables), ("figures", report.figures)):
        for i, item in enumerate(items):
            for attr in ("rows", "columns", "x", "hue", "y"):
                # An axis of another profile is fine: this profile's render leaves that table out.
                check_axis(f"report.{kind}[{i}].{attr}", getattr(item, attr, None),
                           (*anywhere, *("metric",) * (attr == "hue")))
            for axis in item.where:
                check_axis(f"report.{kind}[{i}].where", axis, tuple(anywhere))
            for metric in getattr(item, "metrics", None) or [item.metric]:
                check_metric(f"report.{kind}[{i}]", metric)
            select = getattr(item, "select", None)
            if select is not None:
                for axis in select.axes:
                    check_axis(f"report.{kind}[{i}].select.axes", axis)
                check_metric(f"report.{kind}[{i}].select.by", select.by)
    for axis in report.axis_labels:
        check_axis("report.axis_labels", axis, tuple(anywhere))
    ref = report.reference
    if ref is not None:
        check_axis("report.reference.axis", ref.axis, tuple(anywhere))
        for axis in ref.where:
            check_axis("report.reference.where", axis, tuple(anywhere))
        for metric in [ref.metric] + [c.ours for c in ref.values]:
            check_metric("report.reference", metric)
        if not (path.parent / ref.file).exists():
            raise ConfigError(f"{path}: report.reference.file: {path.parent / ref.file} not found")
