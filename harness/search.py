"""Declared searches: every method a study compares tuned with the same number of trials, each trial scored on
class-disjoint folds of the training classes, and each method's chosen setting then run with the profile's seeds.

A study's `search:` section (a profile may override any of its keys under `profiles.<p>.search`):

    search:
      methods: loss                  # the matrix axis whose labels are the methods compared
      start: {setting: default}      # each method's starting cell: its config before the search sets anything
      trials: 8                      # per method; unequal budgets are refused unless `unequal_budget` says why
      folds: 2                       # class-disjoint folds of the seen classes (data.val_fold)
      objective: {metric: map_at_r}  # its validation value (val_map_at_r) after the last evaluated epoch,
                                     # averaged over the folds; direction: maximize (the default) or minimize
      sampler: {name: random, seed: 0}
      seed: 0                        # the trial runs' seed
      label: tuned                   # the chosen runs' label on the start axis (setting: tuned)
      include_start: true            # trial 0 is the start cell's own values (the default), then the draws
      space:
        contrastive: {loss.neg_margin: {low: 0.3, high: 1.5}}
        "*": {optimizer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}}   # every method
                                     # a distribution: {low, high[, log][, integer]} or {choices: [...]}

What it plans:
- trial runs: for each method, `trials` proposals x `folds` folds, each an ordinary run (its run_id from its
  resolved config) labelled {methods: label, <start axis>: trial, trial: t, fold: f}; it trains on the seen
  classes less the fold's and is scored on the fold's (val_* metrics);
- chosen runs: for each method, once every trial run of it is recorded, the trial with the best mean objective
  over its folds (failed runs never win; a tie goes to the earlier trial) is run with the profile's seeds on the
  study's own split, labelled {methods: label, <start axis>: tuned}. Which trial won is a function of the records,
  recomputed by whatever reads them (plan, render, check, show), as a table's `select` is.

Why Optuna's random sampler and not TPE. A random proposal depends on the sampler's seed, the method and the
trial's number only, so every trial is planned when the study is loaded: `--shard` and `--jobs` split trials like
any other runs, a killed search resumes with the trials already recorded and proposes the same next ones, and
each proposal can be recomputed from the study file. TPE's proposals depend on earlier trials' results; with
the budgets the quick profiles afford (ten trials or fewer per method) Optuna's TPE samples at random anyway
(its n_startup_trials is 10), so `sampler: tpe` is refused, with this reason, rather than run sequentially for
no gain. Random search is the comparison the Reality Check's equal budgets need: the same sampler and the same
number of trials for every method (Bergstra and Bengio 2012 on random search).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.errors import ConfigError, suggest
from harness.schema import Strict

TRIAL_AXIS, FOLD_AXIS = "trial", "fold"
TRIAL_LABEL = "trial"  # the start axis's label on trial runs
EVERY_METHOD = "*"
SIGNIFICANT = 4  # proposals are rounded to 4 significant digits: readable in tables, and still a continuum


class Distribution(Strict):
    """One key's range: {low, high} (log: sampled on a log scale; integer: whole numbers), or {choices: [...]}."""

    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _either(self) -> Distribution:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.integer:
                raise ConfigError("a distribution is {low, high[, log][, integer]} or {choices: [...]}, not both")
            if not self.choices:
                raise ConfigError("choices: empty list")
            return self
        if self.low is None or self.high is None:
            raise ConfigError("a range needs both low and high (or give choices: [...])")
        if not self.low < self.high:
            raise ConfigError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ConfigError(f"log: true needs low > 0 (got {self.low})")
        return self

    def optuna(self) -> Any:
        from optuna import distributions

        if self.choices is not None:
            return distributions.CategoricalDistribution(self.choices)
        if self.integer:
            return distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return distributions.FloatDistribution(float(self.low), float(self.high), log=self.log)


class Sampler(Strict):
    name: str = "random"
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _random(cls, name: str) -> str:
        if name == "tpe":
            raise ConfigError("sampler 'tpe': its proposals depend on earlier trials' results, so trials could not "
                              "be planned, sharded or resumed as independent runs, and with ten trials or fewer "
                              "Optuna's TPE samples at random anyway (n_startup_trials = 10); use name: random")
        if name != "random":
            raise ConfigError(f"sampler '{name}': unknown{suggest(name, ['random'])}; the one sampler is random "
                              "(Optuna's RandomSampler)")
        return name


class Objective(Strict):
    metric: str  # an eval metric of the methods' runs; the trials read its validation value (val_<metric>)
    direction: Literal["maximize", "minimize"] = "maximize"


class SearchSpec(Strict):
    methods: str
    start: dict[str, Any] = Field(min_length=1, max_length=1)
    trials: int | dict[str, int]
    unequal_budget: str | None = None  # why the methods' budgets differ, when they do
    folds: int = Field(ge=2)
    objective: Objective
    sampler: Sampler = Sampler()
    seed: int = 0
    label: str = "tuned"
    # Trial 0 is the start cell's own values of the searched keys (the default setting), the rest are drawn: the
    # search then never chooses worse than the default on validation, and the default's validation score is known.
    include_start: bool = False
    space: dict[str, dict[str, Distribution]] = Field(min_length=1)

    @field_validator("trials")
    @classmethod
    def _positive(cls, trials: int | dict[str, int]) -> int | dict[str, int]:
        counts = trials.values() if isinstance(trials, dict) else [trials]
        if any(n < 1 for n in counts):
            raise ConfigError(f"trials: every budget is at least one trial, got {trials}")
        return trials

    @property
    def start_axis(self) -> str:
        return next(iter(self.start))

    def budget(self, method: str) -> int:
        return self.trials[method] if isinstance(self.trials, dict) else self.trials

    def keys(self, method: str) -> dict[str, Distribution]:
        """The keys a method's trials set: the shared ones ("*"), then its own (which win)."""
        return {**self.space.get(EVERY_METHOD, {}), **self.space.get(method, {})}


def check(spec: SearchSpec, methods: list[Any]) -> None:
    """The section against the study's methods: a space for each, known labels, equal budgets (or a reason)."""
    labels = [str(m) for m in methods]
    for key in spec.space:
        if key != EVERY_METHOD and key not in labels:
            raise ConfigError(f"search.space.{key}: no method '{key}' on axis {spec.methods}"
                              f"{suggest(key, labels)}; methods: {', '.join(labels)}")
    bare = [m for m in labels if not spec.keys(m)]
    if bare:
        raise ConfigError(f"search.space: no keys for method(s) {', '.join(bare)}; every method compared is "
                          f"tuned (give it keys, or keys under \"{EVERY_METHOD}\" for all)")
    if isinstance(spec.trials, dict):
        missing = [m for m in labels if m not in spec.trials]
        unknown = [m for m in spec.trials if m not in labels]
        if missing or unknown:
            raise ConfigError("search.trials: " + (f"no budget for {', '.join(missing)}" if missing else
                                                    f"unknown method {unknown[0]}{suggest(unknown[0], labels)}"))
        if len(set(spec.trials.values())) > 1 and not (spec.unequal_budget or "").strip():
            budgets = ", ".join(f"{m} {n}" for m, n in spec.trials.items())
            raise ConfigError(f"search.trials: unequal budgets ({budgets}) compare the tuning as much as the "
                              "methods; give every method the same number, or say why in search.unequal_budget")


def sampler_seed(spec: SearchSpec, method: str) -> int:
    """The seed of one method's sampler: the declared seed and the method's label, so methods draw apart."""
    digest = hashlib.sha256(f"{spec.sampler.seed}/{method}".encode()).hexdigest()
    return int(digest[:8], 16)


def _rounded(value: Any) -> Any:
    if isinstance(value, float) and value != 0 and math.isfinite(value):
        return round(value, SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))
    return value


def proposals(spec: SearchSpec, method: str, start: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The method's trials in order: {config key: value} each, from Optuna's RandomSampler under the method's
    seed. Trial t's proposal depends on (seed, method, t) only. With include_start, trial 0 is `start` (the start
    cell's values of the searched keys) and trial t the sampler's t-th draw."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {key: dist.optuna() for key, dist in spec.keys(method).items()}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=sampler_seed(spec, method)),
                                direction=spec.objective.direction)
    first = [dict(start or {})] if spec.include_start else []
    return first + [{key: _rounded(value) for key, value in study.ask(distributions).params.items()}
                    for _ in range(spec.budget(method) - len(first))]


@dataclass(frozen=True)
class Choice:
    """A method's search as the records stand: which trial won, or why none has yet."""

    method: str
    trials: int  # the budget
    recorded: int  # trial runs recorded (ok or failed), of trials x folds
    runs: int  # trials x folds
    trial: int | None = None  # the winner
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    objective: float | None = None  # its mean over the folds
    scores: dict[int, float | None] = dataclasses.field(default_factory=dict)  # trial -> mean (None: a fold failed)
    why_none: str = ""


@dataclass(frozen=True)
class SearchPlan:
    """A loaded study's search: its section, each method's start cell and proposals, and how to make runs."""

    spec: SearchSpec
    start: dict[str, tuple[dict[str, Any], dict[str, Any]]]  # method -> (axes, assignments) of its start cell
    proposals: dict[str, list[dict[str, Any]]]  # method -> its trials' proposals
    seeds: list[int]  # the profile's seeds: the chosen runs'
    # (axes, assignments, seed, search facts) -> a Run, validated as the study's own runs are (harness.spec)
    build: Callable[[dict[str, Any], dict[str, Any], int, dict[str, Any]], Any]
    runs: list[Any] = dataclasses.field(default_factory=list)  # the trial runs (plan_trials), made once

    @property
    def budgets(self) -> str:
        """The trials per method, '8' (or '8/4' where a reason allowed unequal budgets)."""
        return "/".join(str(n) for n in sorted({len(p) for p in self.proposals.values()}))

    def plan_trials(self) -> SearchPlan:
        """The plan with its trial runs made (validated once, at load)."""
        return dataclasses.replace(self, runs=self._make_trials())

    def trial_axes(self, method: str, trial: int, fold: int) -> dict[str, Any]:
        axes, _ = self.start[method]
        return {**axes, self.spec.start_axis: TRIAL_LABEL, TRIAL_AXIS: trial, FOLD_AXIS: fold}

    def _make_trials(self) -> list[Any]:
        """Every trial run of every method, in order (method, trial, fold)."""
        out = []
        for method, (_, assignments) in self.start.items():
            for trial, params in enumerate(self.proposals[method]):
                for fold in range(self.spec.folds):
                    facts = {"method": method, "trial": trial, "fold": fold, "folds": self.spec.folds,
                             "sampler": "optuna.samplers.RandomSampler",
                             "sampler_seed": sampler_seed(self.spec, method)}
                    out.append(self.build(self.trial_axes(method, trial, fold),
                                          {**assignments, **params,
                                           "data.val_fold": {"fold": fold, "folds": self.spec.folds}},
                                          self.spec.seed, facts))
        return out

    def choose(self, method: str, ok: Mapping[str, Any], failed: Mapping[str, Any]) -> Choice:
        """The method's winning trial from the records (ok: run_id -> record; failed likewise)."""
        runs = self.trial_runs_of(method)
        recorded = [r for r in runs if r.run_id in ok or r.run_id in failed]
        budget = len(self.proposals[method])
        base = dict(method=method, trials=budget, recorded=len(recorded), runs=len(runs))
        if len(recorded) < len(runs):
            return Choice(**base, why_none=f"{len(recorded)} of {len(runs)} trial runs recorded")
        key = "val_" + self.spec.objective.metric
        scores: dict[int, float | None] = {}
        for trial in range(budget):
            values = []
            for run in runs:
                if run.search["trial"] != trial:
                    continue
                record = ok.get(run.run_id)
                last = record.last_metrics() if record is not None else {}
                values.append(last.get(key))
            scores[trial] = None if any(v is None for v in values) else sum(values) / len(values)
        scored = {t: s for t, s in scores.items() if s is not None}
        if not scored:
            return Choice(**base, scores=scores, why_none=f"every trial failed or lacks {key}")
        sign = 1 if self.spec.objective.direction == "maximize" else -1
        best = max(scored, key=lambda t: (sign * scored[t], -t))  # a tie goes to the earlier trial
        return Choice(**base, trial=best, params=dict(self.proposals[method][best]), objective=scored[best],
                      scores=scores)

    def trial_runs_of(self, method: str) -> list[Any]:
        return [r for r in self.runs if r.search["method"] == method]

    def chosen_runs(self, choice: Choice) -> list[Any]:
        """The winner of one method with the profile's seeds, on the study's own split."""
        if choice.trial is None:
            return []
        axes, assignments = self.start[choice.method]
        facts = {"method": choice.method, "chosen_trial": choice.trial, "objective": choice.objective}
        return [self.build({**axes, self.spec.start_axis: self.spec.label}, {**assignments, **choice.params}, seed,
                           facts) for seed in self.seeds]


def planned(study: Any) -> int:
    """The distinct runs a profile has once its search has chosen: its own (the matrix's and the trials), the
    chosen runs already known, and each method not chosen yet counted at its seeds (an upper bound: a method whose
    start setting wins adds no run)."""
    plan: SearchPlan | None = getattr(study, "search", None)
    if plan is None:
        return len(study.runs)
    chosen = {r.search["method"] for r in study.runs if r.search and "chosen_trial" in r.search}
    chosen |= {str(axes[plan.spec.methods]) for labellings in study.aliases.values() for axes in labellings}
    return len(study.runs) + len(plan.seeds) * len(set(plan.start) - chosen)


def choices(study: Any, scan: Any) -> list[Choice]:
    """Every method's choice from a scan of the study's records (store.Scan)."""
    plan: SearchPlan | None = getattr(study, "search", None)
    if plan is None:
        return []
    return [plan.choose(method, scan.ok, scan.failed) for method in plan.start]


def with_chosen(study: Any, scan: Any) -> Any:
    """The study with each method's chosen runs added, for the methods whose trials are all recorded."""
    plan: SearchPlan | None = getattr(study, "search", None)
    if plan is None:
        return study
    known = {r.run_id: r.axes for r in study.runs}
    extra, aliases = [], {k: list(v) for k, v in study.aliases.items()}
    for run in (run for choice in choices(study, scan) for run in plan.chosen_runs(choice)):
        if run.run_id not in known:
            extra.append(run)
        # A method whose start setting won (trial 0 with include_start) is run by the start cell's runs already:
        # the same run_ids, so their records are labelled for the chosen cell too, not run twice. (Applied to a
        # study that has its chosen runs already, this changes nothing.)
        elif known[run.run_id] != run.axes and run.axes not in aliases.get(run.run_id, []):
            aliases.setdefault(run.run_id, []).append(dict(run.axes))
    if not extra and aliases == study.aliases:
        return study
    return dataclasses.replace(study, runs=[*study.runs, *extra], aliases=aliases)
