"""Which runs of a study still need doing: skip recorded ones, keep failed ones unless asked, take one shard."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import search, store
from harness.errors import HarnessError
from harness.spec import Run, Study


@dataclass(frozen=True)
class Plan:
    study: Study
    todo: list[Run]
    done: list[Run]
    failed: list[Run]  # recorded as failed; rerun only when asked
    corrupt: dict[str, str]  # run_id -> why its file is not a valid record
    blocked: dict[str, str] = field(default_factory=dict)  # run_id -> why it cannot run (its parent failed)

    def children(self, run_id: str) -> bool:
        """Whether some run of the study continues from this one (it must keep its final state)."""
        return any(r.parent == run_id for r in self.study.runs)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' with 1 <= i <= n (1-based, as Slurm array indices usually are)."""
    if text is None:
        return 1, 1
    match = re.fullmatch(r"(\d{1,9})/(\d{1,9})", text.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise HarnessError(f"--shard {text!r}: expected i/n with 1 <= i <= n, e.g. 3/16")
    return int(match.group(1)), int(match.group(2))


def _roots(runs: list[Run]) -> dict[str, str]:
    """run_id -> the run_id its chain starts from (itself outside a chain), within `runs`."""
    parent = {run.run_id: run.parent for run in runs}

    def root(run_id: str) -> str:
        while parent.get(run_id) in parent:
            run_id = parent[run_id]
        return run_id

    return {run.run_id: root(run.run_id) for run in runs}


def shard(runs: list[Run], index: int, count: int) -> list[Run]:
    """The index-th of count disjoint slices; every run lands in exactly one slice, by its position in the matrix
    (a chain by its first run's position: a run and the runs it continues from stay in one slice)."""
    position = {run.run_id: p for p, run in enumerate(runs)}
    roots = _roots(runs)
    return [run for run in runs if position[roots[run.run_id]] % count == index - 1]


def units(runs: list[Run]) -> list[list[Run]]:
    """The runs as units of work, in matrix order: a chain is one unit (its runs in order), any other run its own.
    `harness run --unit K` runs the K-th (1-based); `harness slurm` makes one array task per unit; --jobs workers
    take a unit at a time."""
    position = {run.run_id: p for p, run in enumerate(runs)}
    grouped: dict[str, list[Run]] = {}
    for run, root in zip(runs, _roots(runs).values()):
        grouped.setdefault(root, []).append(run)
    return [parents_first(group) for _, group in sorted(grouped.items(), key=lambda kv: position[kv[0]])]


def parse_units(text: str | None, count: int) -> list[int]:
    """'K' or 'K,L,M-N' (1-based unit numbers, as Slurm array indices are) -> sorted 0-based indices."""
    if text is None:
        return list(range(count))
    chosen: set[int] = set()
    for piece in text.split(","):
        match = re.fullmatch(r"(\d{1,9})(?:-(\d{1,9}))?", piece.strip())
        if not match:
            raise HarnessError(f"--unit {text!r}: expected unit numbers such as 7 or 1-4,9 (1 to {count}; "
                               "`harness show` lists the units)")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if not 1 <= low <= high <= count:
            raise HarnessError(f"--unit {text!r}: this matrix has units 1 to {count}")
        chosen.update(range(low - 1, high))
    return sorted(chosen)


def parents_first(runs: list[Run]) -> list[Run]:
    """The runs in matrix order, except that a run comes after the run it continues from."""
    ids, placed, out = {r.run_id for r in runs}, set(), []
    pending = list(runs)
    while pending:
        waiting = []
        for run in pending:
            if run.parent in ids and run.parent not in placed:
                waiting.append(run)
            else:
                out.append(run)
                placed.add(run.run_id)
        if len(waiting) == len(pending):  # a cycle cannot come from a chain; refuse rather than loop
            raise HarnessError(f"runs {[r.run_id for r in waiting]} continue from each other in a cycle")
        pending = waiting
    return out


def make(study: Study, results: Path, *, shard_spec: str | None = None, rerun_failed: bool = False,
         unit_spec: str | None = None) -> Plan:
    index, count = parse_shard(shard_spec)
    scan = store.scan(results, study.name, study.profile)
    study = search.with_chosen(study, scan)  # a declared search's chosen runs, once its records say which
    mine = shard(study.runs, index, count)
    if unit_spec is not None:  # --unit: the chosen units (a run, or a whole chain), within the shard if any
        every = units(study.runs)
        wanted = {r.run_id for k in parse_units(unit_spec, len(every)) for r in every[k]}
        mine = [r for r in mine if r.run_id in wanted]
    done = [r for r in mine if r.run_id in scan.ok]
    failed = [r for r in mine if r.run_id in scan.failed]
    todo = [r for r in mine if r.run_id not in scan.ok and (rerun_failed or r.run_id not in scan.failed)]
    todo_ids = {r.run_id for r in todo}
    blocked = {}
    for run in todo:  # a parent that will not run this time blocks its chain from there on
        if run.parent is None or run.parent in scan.ok or run.parent in todo_ids:
            continue
        blocked[run.run_id] = (f"its parent run {run.parent} failed ({scan.failed[run.parent].error.message}); "
                               "--rerun-failed retries it" if run.parent in scan.failed
                               else f"its parent run {run.parent} is not recorded")
    changed = True
    while changed:  # and everything after a blocked run in its chain
        changed = False
        for run in todo:
            if run.run_id not in blocked and run.parent in blocked:
                blocked[run.run_id] = f"its parent run {run.parent} cannot run"
                changed = True
    todo = parents_first([r for r in todo if r.run_id not in blocked])
    return Plan(study, todo, done, failed, {k: v for k, v in scan.corrupt.items()
                                            if k in {r.run_id for r in mine}}, blocked)


def study_records(study: Study, results: Path) -> list[store.RunRecord]:
    """The records of a study's current matrix (finished and failed), labelled as the study file labels them now."""
    return records_of(study, store.scan(results, study.name, study.profile))


def records_of(study: Study, scan: store.Scan) -> list[store.RunRecord]:
    """study_records from a scan already made."""
    for why in scan.corrupt.values():
        print(f"warning: skipped {why}")
    # Records of this study's current matrix only: runs of an edited YAML are not mixed into the tables. Their
    # axis labels are the study file's as it stands: a label names a config, the run_id is the config, so a label
    # added or renamed later (a `protocol: corrected` beside a new variant) applies to runs recorded before it.
    study = search.with_chosen(study, scan)
    wanted = {run.run_id: run.axes for run in study.runs}
    # A run that fills two cells (study.aliases: a search's chosen setting that is its start setting) is read
    # once under each of its labellings.
    return [r.model_copy(update={"axes": dict(axes)})
            for r in [*scan.ok.values(), *scan.failed.values()] if r.run_id in wanted
            for axes in [wanted[r.run_id], *study.aliases.get(r.run_id, [])]]


def distinct(records: list[store.RunRecord]) -> list[store.RunRecord]:
    """Each run once: records_of reads a run that fills two cells (Study.aliases) under both labels, which tables
    and claims need; counts, hours and commits need each run once."""
    return list({r.run_id: r for r in records}.values())


@dataclass(frozen=True)
class CostEstimate:
    """What the given runs would take, one at a time, judged from recorded runs of the same study and profile."""

    seconds: float
    estimated: int  # runs with a basis
    rough: int  # of those, runs with no recorded run of their dataset and model (judged from all recorded runs)
    basis: str  # one line: what the figure rests on


def _rates(record: store.RunRecord) -> tuple[float | None, float, float]:
    """(train seconds per training image, seconds per evaluation, seconds outside both) of one finished run."""
    epochs = int(record.config.get("train", {}).get("epochs", 0))
    images = (record.data.train_size if record.data else 0) * epochs
    per_image = record.timing.train_s / images if images and record.timing.train_s else None
    per_eval = record.timing.eval_s / max(1, len(record.metrics))
    overhead = max(0.0, record.timing.wall_s - record.timing.train_s - record.timing.eval_s)
    return per_image, per_eval, overhead


def _kind(config: dict) -> tuple[str, str]:
    return str(config.get("data", {}).get("dataset")), str(config.get("model", {}).get("name"))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def estimate(runs: list[Run], recorded: list[store.RunRecord]) -> CostEstimate | None:
    """Seconds the runs would take, from the recorded runs' measured rates: training seconds per training image
    (x the run's epochs x its training-split size), seconds per evaluation, and setup seconds, averaged over the
    recorded runs of the same dataset and model (all recorded runs when there are none). None without records.

    The training-split size of a run is that of a recorded run with the same data config, else the mean of its
    kind's. An estimate on the machine that recorded the runs, labelled as such wherever it is shown.
    """
    finished = [r for r in recorded if r.status == "ok"]
    if not finished:
        return None
    by_kind: dict[tuple[str, str], list[store.RunRecord]] = {}
    for record in finished:
        by_kind.setdefault(_kind(record.config), []).append(record)
    sizes = {identity_key(r.config.get("data", {})): r.data.train_size for r in finished if r.data}
    total, rough = 0.0, 0
    for run in runs:
        config = run.config_dict()
        group = by_kind.get(_kind(config))
        if group is None:
            group, rough = finished, rough + 1
        rates = [_rates(r) for r in group]
        per_image = _mean([p for p, _, _ in rates if p is not None])
        size = sizes.get(identity_key(config["data"]),
                         _mean([float(r.data.train_size) for r in group if r.data]))
        total += (config["train"]["epochs"] * size * per_image + len(config["train"]["eval_epochs"])
                  * _mean([e for _, e, _ in rates]) + _mean([o for _, _, o in rates]))
    hosts = sorted({r.provenance.host or "?" for r in finished})
    basis = (f"estimate from the measured rates of {len(finished)} recorded run(s) of this profile on "
             f"{', '.join(hosts[:2])}{' ...' if len(hosts) > 2 else ''}, one run at a time"
             + (f"; {rough} run(s) of a dataset and model with no recorded run, judged from all of them (rough)"
                if rough else ""))
    return CostEstimate(total, len(runs), rough, basis)


def identity_key(value: object) -> str:
    """A hashable, order-independent form of a config section."""
    import json

    return json.dumps(value, sort_keys=True, default=str)
