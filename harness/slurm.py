"""Slurm arrays for a profile (`harness slurm`): one array task per unit of work, each with a time limit from its
estimate and a margin.

A unit is a run, or a whole chain (harness.plan.units: a chain's runs continue one another, so they share a task).
Each unit's cost is estimated from the records of that profile when it has some (harness.plan.estimate: the
measured rates), else from the study file's declared estimate, shared out over the units in proportion to the
epochs they train (an evaluation counts as EVAL_EPOCHS of an epoch). Units are grouped by time limit on a ladder
(LADDER) and each group is one sbatch file whose array indices map to unit numbers, so that a long chain and a
short run do not share a limit; a task runs `harness run STUDY --profile P --unit K`, and a resubmitted array
skips whatever is recorded.

A declared search's chosen runs exist only once its trials are recorded: run `harness slurm` again then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from harness import plan as planner
from harness import store
from harness.errors import HarnessError
from harness.spec import Run, Study

EVAL_EPOCHS = 0.2  # an evaluation pass, in training epochs (a test split is a fraction of a training split's work)
LADDER = (0.5, 1, 2, 4, 8, 12, 24, 48, 72, 168)  # time limits, hours
MAX_ARRAY = 1000  # Slurm's default MaxArraySize is 1001: indices 0-1000


@dataclass(frozen=True)
class Unit:
    number: int  # 1-based, as `harness run --unit` takes it
    runs: list[Run]
    low_h: float  # estimated hours
    high_h: float


@dataclass(frozen=True)
class Array:
    limit_h: float
    units: list[Unit]

    @property
    def low_h(self) -> float:
        return sum(u.low_h for u in self.units)

    @property
    def high_h(self) -> float:
        return sum(u.high_h for u in self.units)


def weight(run: Run) -> float:
    train = run.config.train
    return train.epochs + EVAL_EPOCHS * len(train.eval_epochs)


def estimate_units(study: Study, results: Path) -> tuple[list[Unit], str, str]:
    """Every unit of the profile with its estimated hours, what the estimate rests on, and its unit of hours."""
    every = planner.units(study.runs)
    recorded = [r for r in store.scan(results, study.name, study.profile).ok.values()]
    if recorded:
        out = []
        for number, runs in enumerate(every, 1):
            found = planner.estimate(runs, recorded)
            hours = found.seconds / 3600 if found else 0.0
            out.append(Unit(number, runs, hours, hours))
        gpu = any(r.provenance.gpu for r in recorded)
        return out, f"measured rates of {len(recorded)} recorded run(s) of this profile", \
            "GPU-hours" if gpu else "CPU-hours"
    declared = study.spec.profiles[study.profile].estimate
    if declared is None:
        raise HarnessError(f"{study.name}/{study.profile}: no recorded run and no declared estimate to size the "
                           f"tasks by; record a few runs first (harness run {study.name} --profile {study.profile} "
                           "--unit 1) or declare profiles.<profile>.estimate in the study file")
    total = sum(weight(r) for r in study.runs) or 1.0
    out = [Unit(number, runs, declared.low * sum(map(weight, runs)) / total,
                declared.high * sum(map(weight, runs)) / total) for number, runs in enumerate(every, 1)]
    return out, (f"the study file's estimate ({declared.low:g}-{declared.high:g} {declared.unit}: {declared.basis}), "
                 "shared out by epochs"), declared.unit


def limit(hours: float, margin: float) -> float:
    """The smallest rung of the ladder at or above the estimate with its margin."""
    wanted = hours * margin
    for rung in LADDER:
        if wanted <= rung:
            return rung
    raise HarnessError(f"a unit is estimated at {hours:.1f} h ({wanted:.1f} h with the margin), above the longest "
                       f"time limit here ({LADDER[-1]} h); split its chain or run it outside an array")


def arrays(units: list[Unit], margin: float) -> list[Array]:
    """Units grouped by time limit; a group over MAX_ARRAY units is split."""
    groups: dict[float, list[Unit]] = {}
    for unit in units:
        groups.setdefault(limit(unit.high_h, margin), []).append(unit)
    out = []
    for hours in sorted(groups):
        members = groups[hours]
        for start in range(0, len(members), MAX_ARRAY):
            out.append(Array(hours, members[start:start + MAX_ARRAY]))
    return out


def script(study: Study, array: Array, part: int, gpu: bool, cpus: int) -> str:
    hours = int(array.limit_h)
    minutes = int(round((array.limit_h - hours) * 60))
    numbers = " ".join(str(u.number) for u in array.units)
    chains = sum(1 for u in array.units if len(u.runs) > 1)
    lines = [
        "#!/bin/bash",
        f"# {study.name}/{study.profile}, part {part}: {len(array.units)} unit(s) ({chains} chain(s)), each estimated "
        f"at most {max(u.high_h for u in array.units):.2f} h;",
        f"# all together {array.low_h:.1f}-{array.high_h:.1f} h (an estimate). Written by `harness slurm`; "
        "resubmitting skips what is recorded.",
        f"#SBATCH --job-name={study.name}-{study.profile}-{part}",
        f"#SBATCH --array=1-{len(array.units)}",
        f"#SBATCH --time={hours:02d}:{minutes:02d}:00",
        f"#SBATCH --cpus-per-task={cpus}",
        *(["#SBATCH --gres=gpu:1"] if gpu else []),
        f"UNITS=({numbers})",
        'unit="${UNITS[$((SLURM_ARRAY_TASK_ID - 1))]}"',
        'cd "$SLURM_SUBMIT_DIR"',
        f'.venv/bin/harness run {study.name} --profile {study.profile} --unit "$unit" --no-progress',
        "",
    ]
    return "\n".join(lines)


def write(study: Study, results: Path, out_dir: Path, margin: float, cpus: int, say: TextIO) -> list[Path]:
    """The sbatch files of a profile, and a summary on `say`."""
    if margin < 1:
        raise HarnessError(f"--margin {margin}: a time limit below the estimate would kill tasks; use 1 or more")
    units, basis, hours_unit = estimate_units(study, results)
    groups = arrays(units, margin)
    gpu = hours_unit == "GPU-hours"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for part, array in enumerate(groups, 1):
        path = out_dir / f"{study.name}-{study.profile}-{part}.sbatch"
        path.write_text(script(study, array, part, gpu, cpus))
        paths.append(path)
    runs = sum(len(u.runs) for u in units)
    print(f"{study.name}/{study.profile}: {runs} runs in {len(units)} units "
          f"({sum(1 for u in units if len(u.runs) > 1)} chains), {len(groups)} array(s); estimate from {basis}",
          file=say)
    for path, array in zip(paths, groups):
        print(f"  {path}: {len(array.units)} task(s), --time {array.limit_h:g} h (each unit's estimate x "
              f"{margin:g} at most), {array.low_h:.1f}-{array.high_h:.1f} {hours_unit}", file=say)
    low, high = sum(u.low_h for u in units), sum(u.high_h for u in units)
    print(f"  total {low:.1f}-{high:.1f} {hours_unit} (an estimate); submit each file with sbatch"
          + ("; a search's chosen runs come once its trials are recorded: run `harness slurm` again then"
             if study.search is not None else ""), file=say)
    return paths


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("slurm", help="sbatch arrays for a profile: one task per run or chain, time limits "
                                          "from estimates")
    parser.add_argument("study")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--results", type=Path, default=store.RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=Path("slurm"), help="folder for the sbatch files (default: slurm)")
    parser.add_argument("--margin", type=float, default=1.5, help="time limit = estimate x margin, rounded up to a "
                                                                   "rung of the ladder (default 1.5)")
    parser.add_argument("--cpus", type=int, default=8, help="--cpus-per-task (data loading; default 8)")
    parser.set_defaults(func=command)


def command(args: Any) -> int:
    import sys

    from harness import spec

    study = spec.load(args.study, args.profile, components=False)
    write(study, args.results, args.out, args.margin, args.cpus, sys.stdout)
    return 0
