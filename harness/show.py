"""See before you spend: a study's expanded matrix with each run's state, one run's resolved config, and the
estimated cost of what is missing (`harness show`, `harness run --dry-run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import yaml

from harness import plan as planner
from harness import search, store, units
from harness.errors import HarnessError
from harness.spec import Run, Study


def labels(run: Run) -> str:
    return " ".join(f"{k}={v}" for k, v in run.axes.items()) + f" seed={run.seed}"


def cost_line(study: Study, runs: list[Run], recorded: list[store.RunRecord]) -> str:
    """One line: the estimated cost of `runs`, or why there is none (then the profile's declared estimate)."""
    if not runs:
        return "nothing missing: no cost"
    found = planner.estimate(runs, recorded)
    if found is not None:
        return f"estimated cost of {len(runs)} run(s): about {units.duration(found.seconds)} ({found.basis})"
    declared = study.spec.profiles[study.profile].estimate
    if declared is not None:
        return (f"estimated cost of {len(runs)} run(s): {declared.low:g}-{declared.high:g} {declared.unit} (the "
                f"study file's estimate, no run of this profile recorded yet: {declared.basis})")
    return f"no estimate for {len(runs)} run(s): no run of {study.name}/{study.profile} is recorded yet"


def search_lines(study: Study, scan: store.Scan) -> list[str]:
    """A declared search as the records stand: its budget, then per method its trials so far or its choice."""
    plan = study.search
    if plan is None:
        return []
    spec = plan.spec
    lines = [f"search: {plan.budgets} trials per {spec.methods} on {spec.folds} class-disjoint folds "
             f"of the seen classes ({len(plan.runs)} trial runs, seed {spec.seed}); Optuna's random sampler, seed "
             f"{spec.sampler.seed}; objective: val_{spec.objective.metric} after the last evaluated epoch, mean over "
             f"the folds ({spec.objective.direction}); the chosen setting runs with seeds "
             f"{', '.join(map(str, plan.seeds))} as {spec.start_axis}={spec.label}"]
    for choice in search.choices(study, scan):
        scores = ", ".join(f"{t}: {'failed' if v is None else f'{v:.4f}'}" for t, v in choice.scores.items())
        if choice.trial is None:
            lines.append(f"  {choice.method}: {choice.why_none}" + (f" (trials {scores})" if scores else ""))
        else:
            params = ", ".join(f"{k}={v}" for k, v in choice.params.items())
            start = (" = its start setting: the start cell's runs are its chosen runs"
                     if plan.spec.include_start and choice.trial == 0 else "")
            lines.append(f"  {choice.method}: chose trial {choice.trial} ({params}), {choice.objective:.4f}{start}; "
                         f"trials {scores}")
    return lines


def matrix(study: Study, results: Path, out: TextIO, header: str | None = None) -> None:
    """The expanded matrix: state, run_id, labels and seed of every run, then the cost of the missing ones;
    `header`, a first line (`harness show study/item` shows the runs behind one item)."""
    scan = store.scan(results, study.name, study.profile)
    study = search.with_chosen(study, scan)
    if header is not None:
        print(header, file=out)
    states = {r.run_id: ("recorded" if r.run_id in scan.ok else "failed" if r.run_id in scan.failed
                         else "corrupt" if r.run_id in scan.corrupt else "missing") for r in study.runs}
    counts = {s: sum(1 for v in states.values() if v == s) for s in ("recorded", "failed", "corrupt", "missing")}
    overridden = sum(1 for r in study.runs if r.overrides)
    print(f"{study.name}/{study.profile}: {study.description}", file=out)
    print(f"{len(study.runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "corrupt")
          + (f"; {overridden} changed by --set (new run ids)" if overridden else ""), file=out)
    for line in search_lines(study, scan):
        print(line, file=out)
    for run in study.runs:
        state = states[run.run_id]
        extra = ""
        if state in ("recorded", "failed"):
            record = (scan.ok if state == "recorded" else scan.failed)[run.run_id]
            extra = f"  {record.timing.wall_s:.0f} s" + (f"  {record.error.type}" if record.error else "")
        parent = f"  after {run.parent}" if run.parent else ""
        print(f"  {state:<8} {run.run_id}  {labels(run)}{parent}{extra}", file=out)
    missing = [r for r in study.runs if states[r.run_id] in ("missing", "corrupt")]
    print(cost_line(study, missing, [*scan.ok.values()]), file=out)


def find_run(study: Study, run_id: str) -> Run:
    """The run with this id, or the only one whose id starts with it (at least 4 characters)."""
    exact = [r for r in study.runs if r.run_id == run_id]
    if exact:
        return exact[0]
    found = [r for r in study.runs if len(run_id) >= 4 and r.run_id.startswith(run_id)]
    if len(found) == 1:
        return found[0]
    if found:
        raise HarnessError(f"--run {run_id}: {len(found)} runs of {study.name}/{study.profile} start with it "
                           f"({', '.join(r.run_id for r in found[:4])}...); give more characters")
    raise HarnessError(f"--run {run_id}: no run of {study.name}/{study.profile} has that id (or prefix of at least "
                       f"4 characters); `harness show {study.name} --profile {study.profile}` lists them")


def run(study: Study, results: Path, run_id: str, out: TextIO) -> None:
    """One run: its state and record path, labels, parent, overrides, and its fully resolved config as YAML."""
    chosen = find_run(study, run_id)
    scan = store.scan(results, study.name, study.profile)
    path = store.record_path(results, study.name, study.profile, chosen.run_id)
    state = ("recorded" if chosen.run_id in scan.ok else f"failed ({scan.failed[chosen.run_id].error.message})"
             if chosen.run_id in scan.failed else "missing")
    print(f"run {chosen.run_id} of {study.name}/{study.profile}: {state}"
          + (f" -> {path}" if chosen.run_id in scan.ok or chosen.run_id in scan.failed else ""), file=out)
    print(f"labels: {labels(chosen)}", file=out)
    if chosen.parent:
        print(f"continues from run {chosen.parent} (its final state: train.init)", file=out)
    if chosen.overrides:
        print("--set: " + ", ".join(f"{k}={v!r}" for k, v in chosen.overrides.items()), file=out)
    print("config (resolved; its hash is the run_id):", file=out)
    document: dict[str, Any] = chosen.config_dict()
    print(yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=110).rstrip(), file=out)
    print("execution (outside the run_id): " + ", ".join(f"{k}={v}" for k, v in
                                                         chosen.execution.model_dump().items()), file=out)
    if chosen.run_id not in scan.ok:
        print(cost_line(study, [chosen], [*scan.ok.values()]), file=out)


def dry_run(plan: planner.Plan, results: Path, out: TextIO, jobs: int = 1, missing: list[str] | None = None) -> None:
    """What `harness run` would train, in order, and what it would cost; nothing is trained or written."""
    study = plan.study
    scan = store.scan(results, study.name, study.profile)
    for line in search_lines(study, scan):
        print(line, file=out)
    for number, item in enumerate(plan.todo, 1):
        parent = f"  after {item.parent}" if item.parent else ""
        print(f"  would run [{number}/{len(plan.todo)}] {item.run_id}  {labels(item)}{parent}", file=out)
    waiting = [c.method for c in search.choices(study, scan) if c.trial is None]
    if waiting:
        print(f"  then, once their trials are recorded, the chosen setting of {', '.join(waiting)} with "
              f"{len(study.search.seeds)} seed(s) each (not in the cost below)", file=out)
    line = cost_line(study, plan.todo, [*scan.ok.values()])
    if jobs > 1 and plan.todo:
        line += f"; --jobs {jobs} packs them into {jobs} processes: less wall time where cores are free, not less work"
    print(line, file=out)
    if missing is not None:  # every missing or damaged input at once (harness.execute.missing_inputs)
        for number, why in enumerate(missing, 1):
            print(f"missing input ({number}/{len(missing)}): {why}", file=out)
        if plan.todo and not missing:
            print("inputs: every dataset and weights file these runs need is present and verified", file=out)
    print("dry run: nothing was trained or written", file=out)


def status(study: Study, results: Path, out: TextIO, verbose: bool = False) -> None:
    """`harness status`: done, failed and missing runs of one profile, records of an older matrix, corrupt files."""
    scan = store.scan(results, study.name, study.profile)
    study = search.with_chosen(study, scan)
    wanted = {r.run_id for r in study.runs}
    done = [r for r in study.runs if r.run_id in scan.ok]
    failed = [r for r in study.runs if r.run_id in scan.failed]
    missing = [r for r in study.runs if r.run_id not in scan.ok and r.run_id not in scan.failed]
    others = [r for r in [*scan.ok.values(), *scan.failed.values()] if r.run_id not in wanted]
    overridden = [r for r in others if r.provenance.overrides]  # made with --set: another matrix, not an older one
    stale = [r for r in others if not r.provenance.overrides]
    print(f"{study.name}/{study.profile}: {len(done)} done, {len(failed)} failed, {len(missing)} missing "
          f"of {len(study.runs)}" + (f"; {len(stale)} records from an older version of the matrix" if stale else "")
          + (f"; {len(overridden)} records of runs made with --set (give the same --set to status, show and verify"
             " to see them)" if overridden else "")
          + (f"; {len(scan.corrupt)} corrupt" if scan.corrupt else ""), file=out)
    for run in failed:
        error = scan.failed[run.run_id].error
        print(f"  failed  {run.run_id} {run.axes} seed={run.seed}: {error.type}: {error.message}", file=out)
    if verbose:
        for run in missing:
            print(f"  missing {run.run_id} {run.axes} seed={run.seed}", file=out)
    for why in scan.corrupt.values():
        print(f"  corrupt {why}", file=out)


def _size(study: Study) -> str:
    """'quick 150 runs', and the chosen runs a declared search adds once it has chosen."""
    chosen = len(study.search.seeds) * len(study.search.start) if study.search is not None else 0
    return f"{study.profile} {len(study.runs)} runs" + (f" + {chosen} chosen by the search" if chosen else "")


def listing(out: TextIO) -> int:
    """`harness list`: each study with its title and matrix sizes per profile; a broken study file is reported in
    its line and the others are still listed. Returns how many are broken."""
    from harness import spec

    broken = 0
    for name in spec.list_studies():
        try:
            study_file = spec.load_study_file(spec.study_path(name))
            # Every component's arguments too (against its factory: this imports torch, a few seconds), so that a
            # misspelt loss argument shows here as it does in `harness show` and `harness run`.
            sizes = ", ".join(_size(spec.load(name, p)) for p in spec.PROFILES)
        except HarnessError as exc:
            broken += 1
            print(f"{name}: BROKEN: {exc}", file=out)
            continue
        print(f"{name}: {study_file.title} ({sizes})", file=out)
    return broken


def add_list_parser(sub: Any) -> None:
    """`harness list`: its (empty) arguments (argparse's subparsers, from harness.cli)."""
    sub.add_parser("list", help="the studies and their matrix sizes").set_defaults(func=list_command)


def list_command(args: Any) -> int:
    import sys

    broken = listing(sys.stdout)
    if broken:
        print(f"{broken} study file(s) cannot be loaded (above); fix them or move them out of the studies' folder",
              file=sys.stderr)
    return 1 if broken else 0
