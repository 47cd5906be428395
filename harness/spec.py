"""Experiment files -> studies: load a study's YAML, apply a profile, expand its matrix into frozen, hashed runs.

The schema of a run's config is harness.schema, the matrix grammar harness.matrix, the identity harness.identity,
the `report:` section harness.report; this module reads files and puts those together.
"""

from __future__ import annotations


import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from harness import catalog, identity, matrix, search as searches, yamlsafe
from harness import overrides as command_line
from harness.matrix import MatrixSpec
from harness.errors import ConfigError, suggest, yaml_number_hint
from harness.report import ReportSpec, check_report
from harness.schema import ExecutionConfig, RunConfig, Strict, check_components

# The project's own studies.
EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
# $HARNESS_EXPERIMENTS adds folders of study files (os.pathsep-separated: a lab's own studies, a scratch copy) to
# the project's: a study there is listed, run and rendered like the project's, and one with a project study's
# name takes its place. Its defaults.yaml is its folder's own, else the project's.
EXTRA_DIRS = tuple(Path(p) for p in os.environ.get("HARNESS_EXPERIMENTS", "").split(os.pathsep) if p)
DEFAULTS_FILE = "defaults.yaml"
PROFILES = ("full", "quick", "smoke")
DEFAULT_PROFILE = "quick"
# Limits on what an experiment file may be: its size, its nesting, and its size once YAML aliases are expanded
# (a 1 KB file of nested aliases can stand for 10^7 elements; validating that would take minutes or all memory).
MAX_YAML_BYTES = 1_000_000


class BaselineSpec(Strict):
    """The baseline runs of a study: each kind once per cell of the `over` axes (e.g. every class split), with
    the study's data, model config and metrics. Profile matrix overrides do not add other axes to them."""

    kinds: list[str] = Field(min_length=1)  # names in harness.catalog.BASELINES
    over: list[str] = []  # matrix axes the baselines vary with (they must exist in the profile's matrix)


class ChainSpec(Strict):
    """Runs that continue one another: among the runs with all of `axes` (and the labels in `where`), those that
    agree on every other axis and on the seed form one chain, in the declared order of `axes` (the first axis
    slowest); each run after the first starts from the final state of the one before it (train.init), as one
    script carrying one model and optimizer through them would."""

    axes: list[str] = Field(min_length=1)
    where: dict[str, Any] = {}  # axis -> label (or list of labels): only these runs are chained


class Estimate(Strict):
    """What a profile not run here would cost: an estimate, labelled as one, with its basis (the limitations
    chapter prints it beside the hours measured from the records of the profiles that were run)."""

    unit: Literal["GPU-hours", "CPU-hours"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)
    basis: str

    @model_validator(mode="after")
    def _ordered(self) -> Estimate:
        if self.high < self.low:
            raise ConfigError(f"estimate: high ({self.high}) is below low ({self.low})")
        return self


class DemoSpec(Strict):
    """The run `harness demo` serves by default for a profile: its matrix cell (axis -> label) and seed. That run
    keeps its final weights (execution.save_weights), so the demo works from the records alone."""

    where: dict[str, Any] = {}
    seed: int = 0


class ProfileSpec(Strict):
    description: str
    estimate: Estimate | None = None  # the full profiles: never run here
    config: dict[str, Any] = {}
    execution: dict[str, Any] = {}
    matrix: MatrixSpec = {}
    seeds: list[int] | None = None
    baselines: BaselineSpec | None = None  # replaces the study's
    chains: list[ChainSpec] | None = None  # replaces the study's
    demo: DemoSpec | None = None  # the run `harness demo` serves by default (harness.demo)
    search: dict[str, Any] = {}  # keys of the study's search (harness.search) this profile sets otherwise
    # The claims (by name, or all) this profile tests on the original's data at a comparable budget; on the
    # others it is a stand-in, and their verdicts say consistent / inconsistent rather than reproduced.
    claims_on_original: list[str] | Literal["all"] = []

    def on_original(self, claim: str) -> bool:
        """Whether this profile tests the claim on the original's data at a comparable budget."""
        return self.claims_on_original == "all" or claim in self.claims_on_original


class StudyFile(Strict):
    study: str
    title: str
    question: str
    anchors: dict[str, Any] = {}  # a place for YAML anchors (&name) that matrix values refer to; not read
    config: dict[str, Any] = {}
    execution: dict[str, Any] = {}  # harness.schema.ExecutionConfig: outside the run_id
    matrix: MatrixSpec = {}
    baselines: BaselineSpec | None = None  # raw input and untrained network, shown in every table
    chains: list[ChainSpec] = []  # runs that continue from other runs' final states
    search: dict[str, Any] | None = None  # a declared search (harness.search), validated per profile
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
        self._verdict_words()
        return self

    def _verdict_words(self) -> None:
        """A declared verdict is a word of its claim's kind on that profile's evidence (report.claims)."""
        from harness.report import NOT_TESTABLE, words

        names = [c.name for c in self.report.claims]
        for profile, chosen in self.profiles.items():
            if chosen.claims_on_original != "all":
                for name in chosen.claims_on_original:
                    if name not in names:
                        raise ConfigError(f"profiles.{profile}.claims_on_original: no claim '{name}'"
                                          f"{suggest(name, names)}")
        for claim in self.report.claims:
            for profile, word in claim.verdict.items():
                if profile not in PROFILES:
                    raise ConfigError(f"report.claims '{claim.name}'.verdict: unknown profile '{profile}'"
                                      f"{suggest(profile, PROFILES)}")
                original = self.profiles[profile].on_original(claim.name)
                allowed = (*words(claim.kind, original), NOT_TESTABLE)
                if word not in allowed:
                    setting = "the original's data" if original else "a stand-in"
                    raise ConfigError(f"report.claims '{claim.name}'.verdict.{profile}: '{word}' is not said of a "
                                      f"claim of kind {claim.kind} tested on {setting} (profiles.{profile}."
                                      f"claims_on_original); one of {', '.join(dict.fromkeys(allowed))}")


@dataclass(frozen=True)
class Run:
    """One resolved run: its identity, the matrix cell it fills, its frozen config and how to execute it."""

    study: str
    profile: str
    run_id: str
    axes: dict[str, Any]  # axis name -> label of this run's value (a component's name, or the scalar)
    config: RunConfig
    execution: ExecutionConfig = ExecutionConfig()
    # The --set overrides this run took ({key: value}); already in `config`, kept apart for the record.
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The sha256 of its profile's pre-registration file (harness.preregistration), None without one.
    preregistration: str | None = None
    # A declared search's facts about this run (harness.search): method, trial, fold and sampler of a trial run;
    # method, chosen trial and its objective of a chosen run. None for the matrix's own runs.
    search: dict[str, Any] | None = None

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def parent(self) -> str | None:
        """The run whose final state this run continues from (train.init), or None."""
        return self.config.train.init

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
    demo_run: str | None = None  # the run_id `harness demo` serves by default (the profile's `demo:`), if any
    # The declared search (harness.search): its trial runs are in `runs`; its chosen runs join them once the
    # records say which trial won (search.with_chosen).
    search: searches.SearchPlan | None = None
    # Other labels of a run that fills two cells: a search's chosen setting that is the method's start setting
    # (trial 0 won) is the same run_id as a start-cell run, so its records also fill the chosen cell.
    aliases: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    @property
    def description(self) -> str:
        return self.spec.profiles[self.profile].description


PREREGISTERED = "preregistered"  # beside the study files: <profile>.yaml (harness.preregistration)


def preregistration_path(experiments: Path, profile: str) -> Path:
    return Path(experiments) / PREREGISTERED / f"{profile}.yaml"


def preregistration_sha256(experiments: Path, profile: str) -> str | None:
    """The sha256 of a profile's pre-registration file (every run of that profile records it), or None."""
    path = preregistration_path(experiments, profile)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def read_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes; an experiment file is at most "
                              f"{MAX_YAML_BYTES} bytes")
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    return yamlsafe.load(text, str(path))


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


def describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """A pydantic error as one line: the key, what is wrong, what was given."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"unknown key '{key}'{suggest(loc[-1], allowed)}; allowed: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"missing key '{key}'"
    got = error.get("input")
    shown = repr(got)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{key}: {error['msg'].lower()} (got {type(got).__name__} {shown}){yaml_number_hint(got)}"


def folders(experiments: Path | None = None) -> list[Path]:
    """Where studies are looked up, first match first: one given folder, or $HARNESS_EXPERIMENTS's and then the
    project's."""
    if experiments is not None:
        return [experiments]
    for folder in EXTRA_DIRS:  # a typo here would silently leave that lab's studies out
        if not folder.is_dir():
            raise ConfigError(f"$HARNESS_EXPERIMENTS names {folder}, which is not a folder; fix the path (folders "
                              f"are separated by '{os.pathsep}') or unset it")
    return [*EXTRA_DIRS, EXPERIMENTS_DIR]


def list_studies(experiments: Path | None = None) -> list[str]:
    return sorted({p.stem for folder in folders(experiments) for p in folder.glob("*.yaml")
                   if p.name != DEFAULTS_FILE})


def study_path(name: str, experiments: Path | None = None) -> Path:
    for folder in folders(experiments):
        if (folder / f"{name}.yaml").is_file() and name != Path(DEFAULTS_FILE).stem:
            return folder / f"{name}.yaml"
    known = list_studies(experiments)
    raise ConfigError(f"unknown study '{name}'{suggest(name, known)}; known: {', '.join(known)} (looked in "
                      f"{', '.join(str(f) for f in folders(experiments))})")


def load_study_file(path: Path) -> StudyFile:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc, StudyFile)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if spec.study != path.stem:
        raise ConfigError(f"{path}: study: '{spec.study}' must match the file name '{path.stem}'")
    return spec


def load(name: str, profile: str = DEFAULT_PROFILE, experiments: Path | None = None, *,
         components: bool = True, overrides: tuple[command_line.Override, ...] = ()) -> Study:
    """Validate a study and expand its matrix for one profile; any problem is a ConfigError naming file and key.

    With `components` (the default) every component's arguments are checked against its factory, which imports
    torch; commands that only list, count or render runs pass False (names, types and shapes are still checked).
    `overrides` (harness.overrides, from --set) apply to every run's resolved config before it is validated.
    """
    path = study_path(name, experiments)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'{suggest(profile, PROFILES)}; known: {', '.join(PROFILES)}")
    spec = load_study_file(path)
    defaults_path = path.parent / DEFAULTS_FILE
    if not defaults_path.is_file():  # a folder of added studies without defaults of its own
        defaults_path = EXPERIMENTS_DIR / DEFAULTS_FILE
    defaults = read_yaml(defaults_path) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{defaults_path}: expected a mapping at the top level")
    chosen = spec.profiles[profile]
    base = matrix.deep_merge(matrix.deep_merge(defaults, spec.config), chosen.config)
    try:
        execution = ExecutionConfig.model_validate(matrix.deep_merge(spec.execution, chosen.execution))
        blocks = matrix.blocks(spec.matrix, chosen.matrix)
        baselines = chosen.baselines or spec.baselines
        if baselines is not None:
            blocks.append(matrix.baseline_block(blocks, baselines.kinds, baselines.over))
        cells = list(matrix.cells(blocks))
        order = matrix.axis_order(blocks)
    except ValidationError as exc:
        raise ConfigError(f"{path}: execution: {describe(exc, ExecutionConfig)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    seeds = chosen.seeds if chosen.seeds is not None else spec.seeds
    if not seeds:
        raise ConfigError(f"{path}: seeds: empty list (the matrix would have no runs)")

    registered = preregistration_sha256(path.parent, profile)
    origins = _Origins(path, profile, chosen.config, spec.config, blocks, defaults, defaults_path, overrides)
    runs: dict[str, Run] = {}  # in matrix order (dicts keep insertion order)
    checked: set[str] = set()
    used: set[str] = set()
    for axes, assignments in cells:
        if catalog.BASELINE_AXIS in axes:  # a classifier head's accuracy is not defined without training a head
            assignments = {**assignments, **_without_head_metrics(base)}
        for seed in seeds:
            config, applied = _validated(path, origins, base, assignments, seed, components, checked)
            used.update(applied)
            try:
                _add_run(runs, Run(spec.study, profile, identity.run_id(config.model_dump(mode="json")), axes,
                                   config, execution, applied, registered), path)
            except ConfigError as exc:
                if not applied:
                    raise
                raise ConfigError(f"{exc}: after --set {', '.join(applied)} the two cells are one run; leave the "
                                  "key to the matrix axis that varies it") from None
    def build(axes: dict[str, Any], assignments: dict[str, Any], seed: int, facts: dict[str, Any]) -> Run:
        config, applied = _validated(path, origins, base, assignments, seed, components, checked)
        used.update(applied)
        return Run(spec.study, profile, identity.run_id(config.model_dump(mode="json")), axes, config, execution,
                   applied, registered, search=facts)

    search_plan = _search(path, spec, profile, cells, seeds, build)
    if search_plan is not None:
        for run in search_plan.runs:
            _add_run(runs, run, path)
    unused = [o.text for o in overrides if o.key not in used]
    if unused:
        raise ConfigError(f"--set {unused[0]}: every run of {spec.study}/{profile} sets this key through its matrix "
                          "axes, which keep their values; nothing was overridden")
    chains = chosen.chains if chosen.chains is not None else spec.chains
    ordered_runs = _chained(path, list(runs.values()), chains, order)
    anywhere = {str(axis) for m in [spec.matrix, *(p.matrix for p in spec.profiles.values())]
                for block in (m if isinstance(m, list) else [m]) if isinstance(block, dict) for axis in block}
    check_report(path, spec.report, order, anywhere)
    ordered_runs, demo_run = _with_demo(path, profile, ordered_runs, chosen.demo)
    if search_plan is not None:
        order = {**order, searches.TRIAL_AXIS: list(range(max(map(len, search_plan.proposals.values())))),
                 searches.FOLD_AXIS: list(range(search_plan.spec.folds))}
        start = search_plan.spec.start_axis
        order[start] = [*order[start], *(x for x in (searches.TRIAL_LABEL, search_plan.spec.label)
                                          if x not in order[start])]
    return Study(spec.study, path, spec, profile, ordered_runs, order, demo_run, search_plan)


def _search(path: Path, spec: StudyFile, profile: str, cells: list[tuple[dict[str, Any], dict[str, Any]]],
            seeds: list[int], build: Any) -> searches.SearchPlan | None:
    """The profile's search (the study's `search:` with the profile's keys over it), its trial runs made; errors
    name the file and the search key."""
    if spec.search is None:
        if spec.profiles[profile].search:
            raise ConfigError(f"{path}: profiles.{profile}.search: the study declares no search to adjust")
        return None
    raw = matrix.deep_merge(spec.search, spec.profiles[profile].search)
    try:
        chosen = searches.SearchSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: search.{describe(exc, searches.SearchSpec)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: search: {exc}") from None
    axis, (start_axis, start_label) = chosen.methods, next(iter(chosen.start.items()))
    starts: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for axes, assignments in cells:
        if axis in axes and axes.get(start_axis) == start_label:
            if str(axes[axis]) in starts:
                raise ConfigError(f"{path}: search.start: two cells of method {axes[axis]} have {start_axis} = "
                                  f"{start_label}; a method starts from one cell")
            starts[str(axes[axis])] = (axes, assignments)
    if not starts:
        raise ConfigError(f"{path}: search: no matrix cell has both axis '{axis}' and {start_axis} = {start_label} "
                          "(search.methods names the axis of the methods, search.start their starting cell)")
    try:
        searches.check(chosen, list(starts))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    drawn = {}
    for method, (axes, assignments) in starts.items():
        start = None
        if chosen.include_start:  # the start cell's own values of the searched keys: trial 0
            config = build(axes, assignments, chosen.seed, {}).config_dict()
            start = {key: matrix.get_path(config, key.split(".")) for key in chosen.keys(method)}
            unset = [key for key, value in start.items() if value is matrix.MISSING]
            if unset:
                raise ConfigError(f"{path}: search.space.{method}.{unset[0]}: the start cell has no value for it, "
                                  "so include_start cannot make it trial 0")
        drawn[method] = searches.proposals(chosen, method, start)
    plan = searches.SearchPlan(chosen, starts, drawn, list(seeds), build)
    try:
        plan = plan.plan_trials()
    except ConfigError as exc:
        raise ConfigError(f"{exc} (a trial run of search.space)") from None
    metrics = plan.runs[0].config.eval.metrics
    if chosen.objective.metric not in metrics:
        raise ConfigError(f"{path}: search.objective.metric: '{chosen.objective.metric}' is not among the runs' "
                          f"eval.metrics{suggest(chosen.objective.metric, metrics)}; metrics: {', '.join(metrics)}")
    return plan


def _with_demo(path: Path, profile: str, runs: list[Run], demo: DemoSpec | None) -> tuple[list[Run], str | None]:
    """The runs with the profile's demo run set to keep its weights, and that run's id (None without `demo:`)."""
    if demo is None:
        return runs, None
    where = {str(k): v for k, v in demo.where.items()}
    matches = [r for r in runs if r.seed == demo.seed and r.axes == where]
    if len(matches) != 1:
        cells = "; ".join(" ".join(f"{k}={v}" for k, v in r.axes.items()) for r in runs if r.seed == demo.seed)
        raise ConfigError(f"{path}: profiles.{profile}.demo: {len(matches)} runs are the cell {where} with seed "
                          f"{demo.seed}; name exactly one matrix cell, every axis (cells: {cells[:300]})")
    chosen = matches[0]
    keep = chosen.execution.model_copy(update={"save_weights": True})
    return [dataclasses.replace(r, execution=keep) if r is chosen else r for r in runs], chosen.run_id


def _chained(path: Path, runs: list[Run], chains: list[ChainSpec], order: dict[str, list[Any]]) -> list[Run]:
    """The runs with each chain's train.init set to the run before it (run_ids recomputed: a run's id names its
    parent's, so the whole history), in matrix order."""
    runs = list(runs)
    for i, chain in enumerate(chains):
        for axis in [*chain.axes, *chain.where]:
            if axis not in order:
                raise ConfigError(f"{path}: chains[{i}]: unknown axis '{axis}'{suggest(axis, list(order))}; "
                                  f"axes: {', '.join(order)}")
        wanted = {a: (v if isinstance(v, list) else [v]) for a, v in chain.where.items()}
        groups: dict[tuple, list[int]] = {}
        for position, run in enumerate(runs):
            if all(a in run.axes for a in chain.axes) and all(run.axes.get(a) in v for a, v in wanted.items()):
                rest = tuple(sorted((a, str(v)) for a, v in run.axes.items() if a not in chain.axes))
                groups.setdefault((run.seed, rest), []).append(position)
        for positions in groups.values():
            positions.sort(key=lambda p: tuple(order[a].index(runs[p].axes[a]) for a in chain.axes))
            for parent, child in zip(positions, positions[1:]):
                run = runs[child]
                if run.config.train.init is not None:
                    raise ConfigError(f"{path}: chains[{i}]: run {run.axes} seed {run.seed} is already in a chain")
                config = run.config.model_copy(
                    update={"train": run.config.train.model_copy(update={"init": runs[parent].run_id})})
                runs[child] = dataclasses.replace(run, config=config,
                                                  run_id=identity.run_id(config.model_dump(mode="json")))
    return runs


def _without_head_metrics(base: dict[str, Any]) -> dict[str, Any]:
    evaluation = base.get("eval", {}) if isinstance(base.get("eval"), dict) else {}
    return {f"eval.{key}": [m for m in evaluation[key] if m not in catalog.HEAD_METRICS]
            for key in ("metrics", "unseen_metrics") if isinstance(evaluation.get(key), list)}


@dataclass(frozen=True)
class _Origins:
    """Which file and section set a config value, for the error line: the profile's config, the study's config,
    a matrix axis, or the defaults file."""

    path: Path
    profile: str
    profile_config: dict[str, Any]
    study_config: dict[str, Any]
    blocks: list[matrix.Block]
    defaults: dict[str, Any]
    defaults_path: Path
    overrides: tuple[command_line.Override, ...] = ()

    def __call__(self, loc: Sequence[str]) -> str:
        override = command_line.origin(self.overrides, loc)
        if override is not None:
            return f"--set {override.text}: "
        for label, source in ((f"profiles.{self.profile}.config", self.profile_config), ("config", self.study_config)):
            if matrix.get_path(source, loc) is not matrix.MISSING:
                return f"{self.path}: {label}."
        for block in self.blocks:
            for axis, (axis_path, values) in block.items():
                paths = {p for v in values for p in matrix.cell(axis, v, axis_path)[1]}
                if any(".".join(loc).startswith(p) for p in paths):
                    return f"{self.path}: matrix.{axis} -> "
        if matrix.get_path(self.defaults, loc) is not matrix.MISSING:
            return f"{self.defaults_path}: "
        return f"{self.path} (profile {self.profile}): "


def _validated(path: Path, origins: _Origins, base: dict[str, Any], assignments: dict[str, Any], seed: int,
               components: bool, checked: set[str]) -> tuple[RunConfig, dict[str, Any]]:
    """One cell's resolved config (with the --set overrides it takes, also returned), validated; errors name the
    file and section, or the --set, that set the bad value."""
    try:
        resolved = matrix.resolve(base, assignments, seed)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    applied = command_line.apply(resolved, origins.overrides, assignments, base)
    try:
        config = RunConfig.model_validate(resolved)
        # Seeds share components: check each distinct config (less its seed) once.
        unseeded = identity.run_id({**config.model_dump(mode="json"), "seed": 0})
        if components and unseeded not in checked:
            check_components(config)
            checked.add(unseeded)
    except ValidationError as exc:
        loc = [str(p) for p in exc.errors()[0]["loc"]]
        raise ConfigError(f"{origins(loc)}{describe(exc, RunConfig)}{_with(origins, loc, applied)}") from None
    except ConfigError as exc:
        loc = str(exc).split(":")[0].split(".")
        raise ConfigError(f"{origins(loc)}{exc}{_with(origins, loc, applied)}") from None
    return config, applied


def _with(origins: _Origins, loc: Sequence[str], applied: dict[str, Any]) -> str:
    """' (with --set ...)' when overrides reached a run whose error is about a key they did not set."""
    if not applied or command_line.origin(origins.overrides, loc) is not None:
        return ""
    return f" (with --set {', '.join(o.text for o in origins.overrides if o.key in applied)})"


def _add_run(runs: dict[str, Run], run: Run, path: Path) -> None:
    """The same run reached from two blocks (the default setting of two one-factor sweeps) is one run carrying
    the labels of both; a label that disagrees is an error."""
    if run.run_id not in runs:
        runs[run.run_id] = run
        return
    merged = dict(runs[run.run_id].axes)
    for axis, label in run.axes.items():
        if merged.setdefault(axis, label) != label:
            raise ConfigError(f"{path}: matrix: one config is labelled {axis} = {merged[axis]!r} in one block "
                              f"and {label!r} in another")
    runs[run.run_id] = dataclasses.replace(runs[run.run_id], axes=merged)
