"""Running runs: claim, train and record each run of a plan (in this process, in every process of a multi-process
launch, or in a --jobs worker: harness.jobs), a chain's children after their parent and never after a parent that
did not finish; rerunning recorded runs in a scratch folder (verify, the demo's rebuild); comparing a rerun's
metrics with the record's. The command line parses, this module runs."""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import files, store
from harness import plan as planner
from harness.errors import DataError, HarnessError
from harness.spec import Run, Study

Say = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """Where and how a command's runs are recorded (picklable: a --jobs worker receives it at its start)."""

    results: Path
    data: Path | None = None
    rerun_failed: bool = False
    argv: tuple[str, ...] = ()  # the command, recorded in each run's provenance
    progress: bool = False  # progress bars (on the main process only)


def launch_accelerator(processes: int | None = None) -> Any:
    """This launch's Accelerator (harness.train.new_accelerator), refused when its world size is not the one asked
    for with --processes."""
    from harness import train

    accelerator = train.new_accelerator()
    world = accelerator.num_processes
    if processes is not None and processes != world:
        raise HarnessError(f"--processes {processes} requested but {world} process(es) started; on a CPU box "
                           f"launch with `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {processes} -m harness "
                           f"run ...` (accelerate launch --cpu starts a single process there)")
    return accelerator


@contextlib.contextmanager
def faults_as_errors(run: Run):
    """A fault inside a run (a full disk, an unreadable file, a bug) stops the command with one line and leaves no
    record, so the next invocation retries the run; what the science produced is a failed record instead."""
    try:
        yield
    except (HarnessError, KeyboardInterrupt):
        raise
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        hint = {errno.ENOSPC: "; free some space", errno.EFBIG: "; the file-size limit (ulimit -f) is too low",
                errno.EDQUOT: "; the disk quota is full"}.get(exc.errno, "")
        raise HarnessError(f"run {run.run_id} stopped: {exc.strerror or exc}{where}{hint}; no record was "
                           "written, rerun the command to retry it") from None
    except Exception as exc:  # noqa: BLE001 (any other fault means the same to the user)
        detail = " ".join(str(exc).split())[:200]
        raise HarnessError(f"run {run.run_id} stopped by {type(exc).__name__}: {detail}; no record was written, "
                           "rerun the command to retry it (a bug if it repeats: please report it)") from None


def preflight(target: Target, study: Study, plan: planner.Plan, say: Say) -> None:
    """Everything checkable before compute: the environment, every dataset the plan needs (found and verified),
    the locks; then leftovers of killed writes are removed."""
    from harness import train

    train.workers_setting()
    if missing := missing_inputs(plan.todo, target.data):
        if len(missing) == 1:
            raise DataError(missing[0])
        raise DataError(f"{len(missing)} inputs are missing: " + "; ".join(f"({i}) {m}" for i, m in
                                                                          enumerate(missing, 1)))
    for why in plan.corrupt.values():
        say(f"warning: {why} (it will be rerun)")
    if plan.todo:  # the study's folder, where every lock and record goes (--results was checked, not this)
        store.check_writable(store.run_dir(target.results, study.name, study.profile))
    for run in plan.todo:  # a link at a lock's name is refused, never written through
        store.check_lock(target.results, study.name, study.profile, run.run_id)
    for path in files.remove_stale_temporaries(store.run_dir(target.results, study.name, study.profile)):
        say(f"removed {path.name}, left by a write that was killed midway")


def missing_inputs(runs: Sequence[Run], data_root: Path | None) -> list[str]:
    """Every dataset and pretrained-weights file the runs need that is missing or damaged, all at once (one
    phrase each, with the `harness fetch` command where one gets it), not only the first: a GPU owner sees the
    whole list before a launch."""
    from harness import data as datasets
    from harness import fetch, models

    found = []
    for name in dict.fromkeys(run.config.data.dataset for run in runs):
        try:
            datasets.load(name, data_root)
        except DataError as exc:
            hint = f" (or: harness fetch {name}" + (f" --data {data_root}" if data_root else "") + ")" \
                if name in fetch.SOURCES and "harness fetch" not in str(exc) else ""
            found.append(f"{exc}{hint}")
    weights = {(m.get("weights", "IMAGENET1K_V1"), m.get("weights_path")) for run in runs
               for m in [run.config.model] if m.get("name") == "resnet50" and m.get("pretrained", True)}
    for name, path in sorted(weights, key=str):
        try:
            models.resnet50_weights_file(name, path)
        except DataError as exc:
            found.append(f"{exc} (or: harness fetch resnet50)")
    return found


def run_one(target: Target, study: Study, run: Run, accelerator: Any, keep_state: bool = False,
            on_claim: Callable[[], None] | None = None) -> store.RunRecord | None:
    """Claim, train and record one run; None when another process has it or has just recorded it. `on_claim` is
    called once the run is this process's to train (a --jobs worker reports it)."""
    from accelerate.utils import broadcast_object_list

    from harness import train

    main, world = accelerator.is_main_process, accelerator.num_processes
    # The main process claims the run for all of its processes and tells them whether to go.
    claim = store.claim(target.results, study.name, study.profile, run.run_id) if main else contextlib.nullcontext()
    with claim as mine:
        go = [bool(mine) and not store.finished(target.results, study.name, study.profile, run.run_id,
                                                rerun_failed=target.rerun_failed)] if main else [None]
        if world > 1:
            broadcast_object_list(go)
        if not go[0]:
            return None
        if on_claim is not None:
            on_claim()
        # Checkpoints hold one process's RNG states, so resuming is offered for single-process runs.
        checkpoint = store.checkpoint_path(target.results, study.name, study.profile, run.run_id) if world == 1 \
            else None
        states = functools.partial(store.state_path, target.results, study.name, study.profile)
        with faults_as_errors(run):
            record = train.execute(run, data_root=target.data, progress=target.progress and main,
                                   command=list(target.argv), checkpoint=checkpoint, accelerator=accelerator,
                                   init_state=states(run.parent) if run.parent else None,
                                   save_state=states(run.run_id) if keep_state else None,
                                   save_weights=store.weights_path(target.results, study.name, study.profile,
                                                                   run.run_id) if run.execution.save_weights else None)
        if main:
            store.write(target.results, record)
            if checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
        return record


class ParentUnfinished:
    """What `in_order` yields for a run it did not start: its parent failed, or another process has it."""


PARENT_UNFINISHED = ParentUnfinished()


def in_order(runs: Iterable[Run], train_one: Callable[[Run], store.RunRecord | None],
             ) -> Iterator[tuple[Run, store.RunRecord | ParentUnfinished | None]]:
    """Each run with what `train_one` gave (None: another process has it), parents first as given; a run whose
    parent did not finish here (failed, skipped, or not started) is not started: PARENT_UNFINISHED. A consumer
    that stops iterating starts nothing more."""
    not_ok: set[str] = set()
    for run in runs:
        if run.parent in not_ok:
            not_ok.add(run.run_id)
            yield run, PARENT_UNFINISHED
            continue
        record = train_one(run)
        if record is None or record.status != "ok":
            not_ok.add(run.run_id)
        yield run, record


def metrics_text(record: store.RunRecord) -> str:
    """The last evaluation's metrics in one line: 'knn_accuracy=0.8123 ... (epoch 10)'."""
    if not record.metrics:
        return ""
    last = record.metrics[-1]
    return " ".join(f"{k}={v:.4f}" for k, v in last.items() if k != "epoch") + f" (epoch {last['epoch']})"


def run_plan(target: Target, study: Study, plan: planner.Plan, accelerator: Any, say: Say) -> None:
    """Train the plan's runs in this launch, in order, one line per run with an ETA; a failed run is recorded and
    the matrix goes on (its children wait for the next launch)."""
    failed, start = 0, time.perf_counter()

    def train_one(run: Run) -> store.RunRecord | None:
        return run_one(target, study, run, accelerator, keep_state=plan.children(run.run_id))

    def announced(runs: Iterable[Run]) -> Iterator[Run]:  # each run's line comes before whatever happens to it
        for number, run in enumerate(runs, 1):
            say(f"[{number}/{len(plan.todo)}] {run.run_id} " + " ".join(f"{k}={v}" for k, v in run.axes.items())
                + f" seed={run.seed}")
            yield run

    for number, (run, record) in enumerate(in_order(announced(plan.todo), train_one), 1):
        if record is PARENT_UNFINISHED:
            say(f"    not run: its parent run {run.parent} did not finish in this launch; run again to continue")
            continue
        if record is None:
            say("    skipped: another process is running it or has just recorded it")
            continue
        path = store.record_path(target.results, study.name, study.profile, run.run_id)
        remaining = len(plan.todo) - number
        eta = f"; about {(time.perf_counter() - start) / number * remaining / 60:.1f} min left" if remaining else ""
        if record.status == "ok":
            say(f"    ok in {record.timing.wall_s:.1f} s: {metrics_text(record)} -> {path}{eta}")
        else:
            failed += 1
            say(f"    FAILED ({record.error.type}: {record.error.message}) -> {path}{eta}")
    if plan.todo:
        say(f"{study.name}/{study.profile}: ran {len(plan.todo)} runs in {time.perf_counter() - start:.0f} s, "
            f"{failed} failed")


def rerun(run: Run, scratch: Path, *, data_root: Path | None = None, progress: bool = False,
          keep_state: bool = False, command: list[str] | None = None,
          save_weights: Path | None = None) -> store.RunRecord:
    """Train a recorded run again with its states kept in `scratch` (a parent's final state, rerun first, is read
    from there), never touching the results folder; a fault is one line (faults_as_errors)."""
    from harness import train

    states = functools.partial(store.state_path, scratch, run.study, run.profile)
    states(run.run_id).parent.mkdir(parents=True, exist_ok=True)
    with faults_as_errors(run):
        return train.execute(run, data_root=data_root, progress=progress, command=command,
                             init_state=states(run.parent) if run.parent else None,
                             save_state=states(run.run_id) if keep_state else None, save_weights=save_weights)


def compare_metrics(recorded: list[dict[str, float]], rerun: list[dict[str, float]],
                    tolerance: float) -> list[tuple[str, float]]:
    """One line per (epoch, metric) of either side, with its |difference|; a value on one side only is an
    infinite difference (an epoch added to a record by hand, a metric the rerun no longer produces)."""
    old = {m["epoch"]: m for m in recorded}
    new = {m["epoch"]: m for m in rerun}
    lines = []
    for epoch in sorted(set(old) | set(new)):
        names = dict.fromkeys([*old.get(epoch, {}), *new.get(epoch, {})])
        for metric in (n for n in names if n != "epoch"):
            before, after = old.get(epoch, {}).get(metric, math.nan), new.get(epoch, {}).get(metric, math.nan)
            diff = abs(after - before)
            diff = diff if math.isfinite(diff) else math.inf
            verdict = ("identical" if diff == 0 else "agrees" if diff <= tolerance else
                       "DIFFERS" if math.isfinite(diff) else "MISSING in the " + ("rerun" if math.isnan(after)
                                                                                  else "record"))
            lines.append((f"  epoch {epoch:>3} {metric:<16} recorded {before:.6f} rerun {after:.6f} "
                          f"|diff| {diff:.2e} {verdict}", diff))
    return lines


def largest_difference(recorded: list[dict[str, float]], rerun: list[dict[str, float]]) -> tuple[float, int]:
    """(largest |recorded - rerun| over every epoch and metric, how many values were compared)."""
    diffs = [diff for _, diff in compare_metrics(recorded, rerun, 0.0)]
    return max(diffs, default=0.0), len(diffs)
