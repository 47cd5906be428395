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

    @field_validator("dataset")
    @classmethod
    def _known(cls, name: str) -> str:
        from harness.data import DATASETS

        if name not in DATASETS:
            raise ConfigError(f"data.dataset: {DATASETS.unknown(name)}")
        return name


class TrainConfig(_Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=1)
    eval_epochs: list[int] = Field(min_length=1)  # evaluated inside one run: epochs 1, 5, 10 is one run, not three

    @model_validator(mode="after")
    def _schedule(self) -> TrainConfig:
        if sorted(set(self.eval_epochs)) != self.eval_epochs or min(self.eval_epochs) < 1:
            raise ConfigError(f"train.eval_epochs: must be increasing positive integers, got {self.eval_epochs}")
        if self.eval_epochs[-1] != self.epochs:
            raise ConfigError(f"train.eval_epochs: the last evaluation ({self.eval_epochs[-1]}) must be the last "
                              f"epoch (train.epochs = {self.epochs})")
        return self


class EvalConfig(_Strict):
    metrics: list[str] = Field(min_length=1)
    knn_k: int = Field(default=3, gt=0)
    distance: Literal["euclidean", "cosine"] = "euclidean"
    batch_size: int = Field(default=128, gt=0)  # embedding pass only; does not change any number

    @field_validator("metrics")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        from harness.evaluate import METRICS

        for name in names:
            if name not in METRICS:
                raise ConfigError(f"eval.metrics: {METRICS.unknown(name)}")
        return names


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
        from harness.models import check_model
        from harness.objectives import LOSSES, MINERS, check_component
        from harness.train import OPTIMIZERS

        check_model(self.model, "model")
        check_component(self.loss, LOSSES, "loss")
        if self.miner is not None:
            check_component(self.miner, MINERS, "miner")
        OPTIMIZERS.check(self.optimizer, "optimizer")
        return self


class TableSpec(_Strict):
    name: str
    metric: str
    rows: str  # a matrix axis
    columns: str  # "epoch" or a matrix axis
    caption: str
    percent: bool = True


class FigureSpec(_Strict):
    name: str
    x: str  # "epoch" or a matrix axis
    hue: str  # a matrix axis
    metrics: list[str] = Field(min_length=1)
    caption: str


class ReferenceSpec(_Strict):
    """Numbers the original authors reported, shown beside ours."""

    file: str  # relative to experiments/
    source: str
    metric: str  # our metric they correspond to
    value_column: str
    axis: str  # our matrix axis that their rows correspond to
    rows: str  # CSV column holding their row labels
    columns: str  # CSV column holding their epochs
    row_map: dict[str, str] = {}  # their row names -> our axis labels
    percent_in_file: bool = True
    setting: str  # their setting, in a few words, for the caption


class ReportSpec(_Strict):
    tables: list[TableSpec] = []
    figures: list[FigureSpec] = []
    reference: ReferenceSpec | None = None


class ProfileSpec(_Strict):
    description: str
    config: dict[str, Any] = {}
    matrix: dict[str, list[Any]] = {}
    seeds: list[int] | None = None


class StudyFile(_Strict):
    study: str
    title: str
    question: str
    anchors: dict[str, Any] = {}  # a place for YAML anchors (&name) that matrix values refer to; not read
    config: dict[str, Any] = {}
    matrix: dict[str, list[Any]] = {}
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

    @property
    def description(self) -> str:
        return self.spec.profiles[self.profile].description


def run_id(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of a resolved config (canonical JSON: sorted keys, no whitespace)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override nested mappings key by key; anything else (lists, scalars, None) replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
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


def _cell(axis: str, value: Any) -> tuple[Any, dict[str, Any]]:
    """(label, {config path: value}) for one axis value.

    A plain value (scalar or component mapping) is set at the axis's own path and labelled by itself or its
    `name`. A mapping {label: ..., set: {path: value, ...}} sets several paths together (a loss with its miner).
    """
    if isinstance(value, Mapping) and "set" in value:
        if set(value) != {"label", "set"} or not isinstance(value["set"], Mapping) or not value["set"]:
            raise ConfigError(f"matrix.{axis}: a paired value has exactly 'label' and a non-empty 'set' mapping, "
                              f"got keys {sorted(value)}")
        return value["label"], dict(value["set"])
    if isinstance(value, Mapping):
        if "name" not in value:
            raise ConfigError(f"matrix.{axis}: mapping values need a 'name' to label them, got {dict(value)}")
        return value["name"], {axis: value}
    return value, {axis: value}


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
    matrix = {**spec.matrix, **chosen.matrix}
    seeds = chosen.seeds if chosen.seeds is not None else spec.seeds
    for axis, values in matrix.items():
        if not values:
            raise ConfigError(f"{path}: matrix.{axis}: empty axis (the matrix would have no runs)")
    if not seeds:
        raise ConfigError(f"{path}: seeds: empty list (the matrix would have no runs)")

    def origin(loc: Sequence[str]) -> str:
        for label, source in ((f"profiles.{profile}.config", chosen.config), ("config", spec.config)):
            if _get_path(source, loc) is not _MISSING:
                return f"{path}: {label}."
        for axis, values in matrix.items():
            paths = {p for v in values for p in _cell(axis, v)[1]}
            if any(".".join(loc).startswith(p) for p in paths):
                return f"{path}: matrix.{axis} -> "
        if _get_path(defaults, loc) is not _MISSING:
            return f"{experiments / DEFAULTS_FILE}: "
        return f"{path} (profile {profile}): "

    runs, seen = [], set()
    for combo in itertools.product(*matrix.values()):
        axes, assignments = {}, {}
        for axis, value in zip(matrix, combo):
            try:
                axes[axis], paths = _cell(axis, value)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
            assignments.update(paths)
        cell = tuple(axes.items())
        if cell in seen:
            raise ConfigError(f"{path}: matrix: two values of one axis share the label {cell}; give them distinct names")
        seen.add(cell)
        for seed in seeds:
            resolved = copy.deepcopy(base)
            for key, value in assignments.items():
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
            runs.append(Run(spec.study, profile, run_id(config.model_dump(mode="json")), axes, config))
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: two cells of the matrix resolve to the same config; remove the duplicate")
    _check_report(path, spec, matrix)
    return Study(spec.study, path, spec, profile, runs)


def _check_report(path: Path, spec: StudyFile, matrix: Mapping[str, Any]) -> None:
    from harness.evaluate import METRICS

    axes = set(matrix) | {"epoch"}
    for kind, items in (("tables", spec.report.tables), ("figures", spec.report.figures)):
        for i, item in enumerate(items):
            for attr in ("rows", "columns", "x", "hue"):
                value = getattr(item, attr, None)
                if value is not None and value not in axes:
                    raise ConfigError(f"{path}: report.{kind}[{i}].{attr}: unknown axis '{value}'"
                                      f"{suggest(value, axes)}; axes: {', '.join(sorted(axes))}")
            for metric in getattr(item, "metrics", None) or [item.metric]:
                if metric not in METRICS:
                    raise ConfigError(f"{path}: report.{kind}[{i}]: {METRICS.unknown(metric)}")
    if spec.report.reference and spec.report.reference.axis not in matrix:
        raise ConfigError(f"{path}: report.reference.axis: unknown axis '{spec.report.reference.axis}'"
                          f"{suggest(spec.report.reference.axis, matrix)}; axes: {', '.join(matrix)}")
    if spec.report.reference and not (path.parent / spec.report.reference.file).exists():
        raise ConfigError(f"{path}: report.reference.file: {path.parent / spec.report.reference.file} not found")
