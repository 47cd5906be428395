"""Command line: `harness run|show|status|verify|render|check|fetch|...`. User errors are one line on stderr and exit
code 2."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import catalog, files, spec, store
from harness import plan as planner
from harness.errors import HarnessError


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=spec.DEFAULT_PROFILE,
                        help=f"one of {', '.join(spec.PROFILES)} (default: {spec.DEFAULT_PROFILE})")
    parser.add_argument("--results", type=Path, default=store.RESULTS_DIR, help="results folder (default: results)")


def _progress_wanted(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _fmt_metrics(record: Any) -> str:
    if not record.metrics:
        return ""
    last = record.metrics[-1]
    return " ".join(f"{k}={v:.4f}" for k, v in last.items() if k != "epoch") + f" (epoch {last['epoch']})"


def results_folder(path: Path) -> Path:
    """The results folder, checked before anything is trained: a folder (or creatable) that this process can write."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HarnessError(f"--results {path}: {existing} exists and is not a folder")
    # access() also refuses a read-only file system to root; nothing is created until a run finishes.
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarnessError(f"--results {path}: {existing} is not writable by this user; choose a writable folder")
    return path


@contextlib.contextmanager
def faults_as_errors(run: Any):
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


def _accelerator(args: argparse.Namespace) -> Any:
    """The launch's Accelerator, refused when its settings would change numbers or its world size is not asked."""
    import torch
    from accelerate import Accelerator

    from harness import train

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    train.check_accelerator(accelerator)
    world = accelerator.num_processes
    if args.processes is not None and args.processes != world:
        raise HarnessError(f"--processes {args.processes} requested but {world} process(es) started; on a CPU box "
                           f"launch with `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {args.processes} -m harness "
                           f"run ...` (accelerate launch --cpu starts a single process there)")
    return accelerator


def _preflight(args: argparse.Namespace, study: spec.Study, plan: planner.Plan, say: Any) -> None:
    """Everything checkable before compute: the environment, every dataset the plan needs (found and verified),
    the locks; then leftovers of killed writes are removed."""
    from harness import data as datasets
    from harness import train

    train.workers_setting()
    for name in dict.fromkeys(run.config.data.dataset for run in plan.todo):
        datasets.load(name, args.data)
    for why in plan.corrupt.values():
        say(f"warning: {why} (it will be rerun)")
    for run in plan.todo:  # a link at a lock's name is refused, never written through
        store.check_lock(args.results, study.name, study.profile, run.run_id)
    for path in files.remove_stale_temporaries(store.run_dir(args.results, study.name, study.profile)):
        say(f"removed {path.name}, left by a write that was killed midway")


def _run_one(args: argparse.Namespace, study: spec.Study, run: spec.Run, accelerator: Any,
             keep_state: bool = False, on_claim: Any = None) -> Any:
    """Claim, train and record one run; None when another process has it or has just recorded it. `on_claim` is
    called once the run is this process's to train (a --jobs worker reports it)."""
    from accelerate.utils import broadcast_object_list

    from harness import train

    main, world = accelerator.is_main_process, accelerator.num_processes
    # The main process claims the run for all of its processes and tells them whether to go.
    claim = store.claim(args.results, study.name, study.profile, run.run_id) if main else contextlib.nullcontext()
    with claim as mine:
        go = [bool(mine) and not store.finished(args.results, study.name, study.profile, run.run_id,
                                                rerun_failed=args.rerun_failed)] if main else [None]
        if world > 1:
            broadcast_object_list(go)
        if not go[0]:
            return None
        if on_claim is not None:
            on_claim()
        # Checkpoints hold one process's RNG states, so resuming is offered for single-process runs.
        checkpoint = store.checkpoint_path(args.results, study.name, study.profile, run.run_id) if world == 1 \
            else None
        states = functools.partial(store.state_path, args.results, study.name, study.profile)
        with faults_as_errors(run):
            record = train.execute(run, data_root=args.data, progress=_progress_wanted(args) and main,
                                   command=args.argv, checkpoint=checkpoint, accelerator=accelerator,
                                   init_state=states(run.parent) if run.parent else None,
                                   save_state=states(run.run_id) if keep_state else None,
                                   save_weights=store.weights_path(args.results, study.name, study.profile,
                                                                   run.run_id) if run.execution.save_weights else None)
        if main:
            store.write(args.results, record)
            if checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
        return record


def cmd_run(args: argparse.Namespace) -> int:
    from harness import jobs, overrides, show

    jobs.check_count(args.jobs)
    study = spec.load(args.study, args.profile, overrides=overrides.parse(args.set))
    if args.dry_run:  # before the accelerator and the data: a look costs nothing
        plan = planner.make(study, args.results, shard_spec=args.shard, rerun_failed=args.rerun_failed)
        print(f"{study.name}/{study.profile}: {len(study.runs)} runs in the matrix"
              f"{f', shard {args.shard}' if args.shard else ''}: {len(plan.done)} recorded, {len(plan.todo)} to run",
              file=sys.stderr)
        for run_id, why in plan.blocked.items():
            print(f"    not run: {run_id}: {why}", file=sys.stderr)
        show.dry_run(plan, args.results, sys.stderr, jobs=args.jobs)
        return 0
    results_folder(args.results)
    accelerator = _accelerator(args)
    if args.jobs > 1 and accelerator.num_processes > 1:
        raise HarnessError(f"--jobs {args.jobs} packs runs into processes of one launch; this launch already has "
                           f"{accelerator.num_processes} processes: use one of --jobs and a multi-process launch")

    def say(*parts: object) -> None:  # one voice for a multi-process launch
        if accelerator.is_main_process:
            print(*parts, file=sys.stderr)

    plan = planner.make(study, args.results, shard_spec=args.shard, rerun_failed=args.rerun_failed)
    _preflight(args, study, plan, say)
    kept = f", {len(plan.failed)} failed kept (--rerun-failed retries them)" \
        if plan.failed and not args.rerun_failed else ""
    say(f"{study.name}/{study.profile}: {len(study.runs)} runs in the matrix"
        f"{f', shard {args.shard}' if args.shard else ''}: {len(plan.done)} recorded, {len(plan.todo)} to run{kept}")
    for run_id, why in plan.blocked.items():
        say(f"    not run: {run_id}: {why}")
    if args.jobs > 1 and plan.todo:
        return jobs.run_packed(args, study, plan, _run_one, _fmt_metrics)
    failed, start, not_ok = 0, time.perf_counter(), set()
    for number, run in enumerate(plan.todo, 1):
        say(f"[{number}/{len(plan.todo)}] {run.run_id} " + " ".join(f"{k}={v}" for k, v in run.axes.items())
            + f" seed={run.seed}")
        if run.parent in not_ok:  # its parent failed, or another process has it: the chain stops here for now
            say(f"    not run: its parent run {run.parent} did not finish in this launch; run again to continue")
            not_ok.add(run.run_id)
            continue
        record = _run_one(args, study, run, accelerator, keep_state=plan.children(run.run_id))
        if record is None:
            say("    skipped: another process is running it or has just recorded it")
            not_ok.add(run.run_id)
            continue
        path = store.record_path(args.results, study.name, study.profile, run.run_id)
        remaining = len(plan.todo) - number
        eta = f"; about {(time.perf_counter() - start) / number * remaining / 60:.1f} min left" if remaining else ""
        if record.status == "ok":
            say(f"    ok in {record.timing.wall_s:.1f} s: {_fmt_metrics(record)} -> {path}{eta}")
        else:
            failed += 1
            not_ok.add(run.run_id)
            say(f"    FAILED ({record.error.type}: {record.error.message}) -> {path}{eta}")
    if plan.todo:
        say(f"{study.name}/{study.profile}: ran {len(plan.todo)} runs in {time.perf_counter() - start:.0f} s, "
            f"{failed} failed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    profiles = [args.profile] if args.profile else list(spec.PROFILES)
    for profile in profiles:
        study = spec.load(args.study, profile, components=False)
        scan = store.scan(args.results, study.name, profile)
        wanted = {r.run_id for r in study.runs}
        done = [r for r in study.runs if r.run_id in scan.ok]
        failed = [r for r in study.runs if r.run_id in scan.failed]
        missing = [r for r in study.runs if r.run_id not in scan.ok and r.run_id not in scan.failed]
        stale = [k for k in [*scan.ok, *scan.failed] if k not in wanted]
        print(f"{study.name}/{profile}: {len(done)} done, {len(failed)} failed, {len(missing)} missing "
              f"of {len(study.runs)}" + (f"; {len(stale)} records from an older version of the matrix" if stale else "")
              + (f"; {len(scan.corrupt)} corrupt" if scan.corrupt else ""))
        for run in failed:
            error = scan.failed[run.run_id].error
            print(f"  failed  {run.run_id} {run.axes} seed={run.seed}: {error.type}: {error.message}")
        if args.verbose:
            for run in missing:
                print(f"  missing {run.run_id} {run.axes} seed={run.seed}")
        for why in scan.corrupt.values():
            print(f"  corrupt {why}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import torch

    from harness import provenance, train, verification

    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise HarnessError(f"--tolerance {args.tolerance}: expected a finite number >= 0 (e.g. 1e-6)")
    if args.sample is not None and args.sample < 1:
        raise HarnessError(f"--sample {args.sample}: expected a number of runs >= 1 (leave it out to rerun all)")
    name, _, item = args.study.partition("/")
    study = spec.load(name, args.profile)
    scan = store.scan(args.results, study.name, study.profile)
    recorded = [r for r in study.runs if r.run_id in scan.ok]
    if not recorded:
        raise HarnessError(f"no finished runs of {study.name}/{study.profile} in {args.results} to verify; "
                           f"run `harness run {study.name} --profile {study.profile}` first")
    if item:  # one table, figure or claim (its caption names it study/item): exactly the runs behind it
        from harness import aggregate
        from harness.render import items

        frame = aggregate.long_frame(planner.study_records(study, args.results))
        behind = items.runs_behind(study.spec.report, item, frame, study.profile, study.axes)
        recorded = [r for r in recorded if r.run_id in behind]
        if not recorded:
            raise HarnessError(f"{args.study}: no finished run stands behind it in {args.results}")
    chosen = recorded[: args.sample] if args.sample else recorded
    # A run that continues another needs its parent's final state: the parents are rerun (and compared) first.
    by_id, wanted = {r.run_id: r for r in study.runs}, {r.run_id for r in chosen}
    for run in chosen:
        parent = run.parent
        while parent in by_id and parent not in wanted:
            wanted.add(parent)
            parent = by_id[parent].parent
    chosen = planner.parents_first([r for r in study.runs if r.run_id in wanted])
    records = planner.study_records(study, args.results)
    threads = verification.recorded_threads([scan.ok[r.run_id] for r in chosen if r.run_id in scan.ok])
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)  # the records' thread count: one difference fewer with the recording host
    env = verification.environment([scan.ok[r.run_id] for r in chosen if r.run_id in scan.ok],
                                   provenance.numerics())
    print(f"{study.name}/{study.profile}: rerunning {len(chosen)} of {len(recorded)} recorded runs; "
          + (f"{env.text}: every number must be identical (tolerance {args.tolerance} absolute)" if env.same else
             f"{env.text}: bit-identity is not expected, so the tables, figures and claims are compared with the "
             "records' seed-to-seed spread"), file=sys.stderr)
    worst, unfinished, reruns = 0.0, 0, {}
    parents = {r.parent for r in chosen if r.parent}
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as scratch:
        states = functools.partial(store.state_path, Path(scratch), study.name, study.profile)
        for run in chosen:
            if run.run_id not in scan.ok:
                raise HarnessError(f"run {run.run_id} {run.axes} seed={run.seed} is not recorded, and runs that "
                                   "continue from it need it; run the study first")
            states(run.run_id).parent.mkdir(parents=True, exist_ok=True)
            with faults_as_errors(run):
                rerun = train.execute(run, data_root=args.data, progress=_progress_wanted(args),
                                      init_state=states(run.parent) if run.parent else None,
                                      save_state=states(run.run_id) if run.run_id in parents else None)
            store.write(Path(scratch), rerun)
            reruns[run.run_id] = rerun
            if rerun.status != "ok":
                unfinished += 1
            diffs = compare_metrics(scan.ok[run.run_id].metrics, rerun.metrics, args.tolerance)
            largest = max((diff for _, diff in diffs), default=0.0)
            worst = max(worst, largest)
            print(f"{run.run_id} {run.axes} seed={run.seed}: {rerun.status}"
                  + (f" ({rerun.error.type}: {rerun.error.message})" if rerun.error else
                     f", largest metric difference {largest:.2e}"))
            for line, _ in diffs if args.per_metric else ():
                print(line)
    checks = verification.check(study.spec.report, study.name, study.profile, study.axes, records, reruns,
                                [item] if item else None, args.tolerance, study.spec.report.axis_labels)
    if item in ("reference", "protocols"):
        checks.insert(0, verification.check_runs(args.study, item, records, reruns, set(reruns), args.tolerance))
    for check in checks:
        print("\n".join(verification.report_lines(check, args.per_metric)))
    differing = [c.name for c in checks if not c.holds]
    identical = worst <= args.tolerance
    ok = not unfinished and (identical if env.same else not differing)
    print(f"largest difference {worst:.2e} ({'identical' if identical else 'not identical'} within tolerance "
          f"{args.tolerance}); {len(checks) - len(differing)} of {len(checks)} tables, figures and claims hold"
          + (f" ({', '.join(differing)} differ)" if differing else "")
          + (f"; {unfinished} rerun(s) did not finish" if unfinished else "")
          + (": VERIFIED" if ok else ": NOT VERIFIED (" + ("same environment, so every number must be identical"
                                                          if env.same else "the conclusions differ") + ")"))
    return 0 if ok else 1


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


def cmd_render(args: argparse.Namespace) -> int:
    from harness import render

    args.paper = args.paper or render.PAPER_DIR
    if copied := render.prepare(args.paper):
        print(f"{args.paper}: copied {', '.join(copied)} from the project's paper/ (it had none)", file=sys.stderr)
    studies = args.studies or spec.list_studies()
    written = render.render(studies, args.profile, args.results, args.paper)
    print(f"rendered {len(written)} files for {', '.join(studies)} (profile {args.profile}) into "
          f"{args.paper / 'generated'}", file=sys.stderr)
    if not args.no_pdf:
        pdf = render.compile_pdf(args.paper)
        if pdf:
            print(f"PDF: {pdf}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Every claim recomputed from the records, every record intact, no result number typed into the prose."""
    from harness import claims, render

    paper = args.paper or render.PAPER_DIR
    problems, total, verdicts = [], 0, {}
    for name in args.studies or spec.list_studies():
        study = spec.load(name, args.profile, components=False)
        computed, found = claims.study_results(study, args.results)
        problems += found
        total += len(study.spec.report.claims)
        for result in computed:
            verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
    problems += claims.prose_problems(paper)
    for line in problems:
        print(f"check: {line}", file=sys.stderr)
    summary = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "none computed"
    if problems:
        print(f"check: {len(problems)} problem(s) in {total} claims (profile {args.profile}; {summary})",
              file=sys.stderr)
        return 1
    print(f"check: {total} claims hold on the records of profile {args.profile} ({summary}); every record is "
          f"intact; no result number typed into {paper}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from harness import evaluate

    if args.seed < 0:
        raise HarnessError(f"--seed {args.seed}: expected an integer >= 0")
    arrays = read_npz(args.file, ("query", "query_labels", "reference", "reference_labels"))
    missing = [key for key in ("query", "query_labels") if key not in arrays]
    if missing:
        raise HarnessError(f"{args.file}: missing array(s) {', '.join(missing)}; expected query, query_labels and "
                           f"optionally reference, reference_labels (found: {', '.join(arrays) or 'none'})")
    values = evaluate.evaluate(arrays["query"], arrays["query_labels"], arrays.get("reference"),
                               arrays.get("reference_labels"), metrics=args.metrics, knn_k=args.knn_k,
                               recall_ks=args.k, distance=args.distance, seed=args.seed,
                               progress=sys.stderr.isatty() and not args.no_progress,
                               n_way=args.n_way, k_shot=args.k_shot, n_episodes=args.episodes)
    print(json.dumps(values, indent=1))
    return 0


# The arrays of an .npz are read only after their declared sizes are checked against this much memory.
NPZ_MEMORY_FRACTION = 0.5


def read_npz(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The named arrays of an .npz archive: plain numeric arrays only, sizes checked before anything is read."""
    import zipfile

    import numpy as np

    if not path.exists():
        raise HarnessError(f"{path}: no such file")
    if not path.is_file():
        raise HarnessError(f"{path}: not a file")
    plain = f"{path}: not a .npz archive of plain numeric arrays (write it with numpy.savez)"
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        if path.read_bytes()[:6] == b"\x93NUMPY":
            raise HarnessError(f"{path}: a single .npy array; save query, query_labels [, reference, "
                               "reference_labels] together with numpy.savez") from None
        raise HarnessError(plain) from None
    limit = NPZ_MEMORY_FRACTION * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    arrays, total = {}, 0
    with archive:
        members = {m.removesuffix(".npy"): m for m in archive.namelist()}
        for name in [n for n in names if n in members]:
            try:
                with archive.open(members[name]) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(handle)
            except (OSError, ValueError, zipfile.BadZipFile, EOFError):
                raise HarnessError(f"{plain}: array '{name}' has no readable header") from None
            if dtype.hasobject or dtype.kind not in "biuf":
                raise HarnessError(f"{path}: array '{name}' holds {dtype} values; expected numbers")
            total += int(np.prod(shape, dtype=object)) * dtype.itemsize
            if total > limit:
                raise HarnessError(f"{path}: array '{name}' declares shape {shape} ({total / 1e9:.1f} GB so far), "
                                   f"more than half this machine's memory; score it in parts")
        try:
            with np.load(path, allow_pickle=False) as loaded:
                for name in [n for n in names if n in members]:
                    arrays[name] = loaded[name]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            raise HarnessError(plain) from None
    return arrays


def cmd_list(args: argparse.Namespace) -> int:
    broken = 0
    for name in spec.list_studies():
        try:  # one broken study file is reported in its line; the others are still listed
            study_file = spec.load_study_file(spec.study_path(name))
            sizes = ", ".join(f"{p} {len(spec.load(name, p, components=False).runs)} runs" for p in spec.PROFILES)
        except HarnessError as exc:
            broken += 1
            print(f"{name}: BROKEN: {exc}")
            continue
        print(f"{name}: {study_file.title} ({sizes})")
    if broken:
        print(f"{broken} study file(s) cannot be loaded (above); fix them or move them out of the studies' folder",
              file=sys.stderr)
    return 1 if broken else 0


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key of every run (a YAML value: --set train.epochs=3 --set "
                             "loss.neg_margin=0.2); a new run_id, recorded in provenance; a matrix axis keeps its "
                             "own values (README: Overrides)")


def cmd_show(args: argparse.Namespace) -> int:
    from harness import overrides, show

    sets = overrides.parse(args.set)
    study = spec.load(args.study, args.profile, components=bool(sets), overrides=sets)
    if args.run:
        show.run(study, args.results, args.run, sys.stdout)
    else:
        show.matrix(study, args.results, sys.stdout)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from harness import data, fetch

    fetch.fetch(args.dataset, data.data_root(args.data), mirror=args.mirror, say=fetch.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every missing run of a study's matrix")
    run.add_argument("study")
    _add_common(run)
    run.add_argument("--data", type=Path, default=None, help="dataset root (default: $HARNESS_DATA or ./data)")
    run.add_argument("--shard", default=None, help="run only slice i of n (1-based), e.g. 3/16")
    run.add_argument("--rerun-failed", action="store_true", help="also retry runs recorded as failed")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--processes", type=int, default=None,
                     help="the number of processes this launch must have (checked against the real world size)")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="train N runs at a time in N worker processes on this machine (each gets cores/N threads; "
                          "on one GPU they share it); runs are claimed through the same locks as --shard")
    _add_overrides(run)
    run.add_argument("--dry-run", action="store_true", help="print what would run and its estimated cost; train "
                                                            "nothing")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="done / failed / missing runs per profile")
    status.add_argument("study")
    status.add_argument("--profile", default=None, help="one profile (default: all)")
    status.add_argument("--results", type=Path, default=store.RESULTS_DIR)
    status.add_argument("-v", "--verbose", action="store_true", help="list missing runs too")
    status.set_defaults(func=cmd_status)

    verify = sub.add_parser("verify", help="rerun recorded runs in a scratch folder and compare them with the "
                                           "records: bit for bit in the records' environment, else table by table")
    verify.add_argument("study", help="a study, or study/item: only the runs behind one table, figure or claim "
                                      "(its caption names it)")
    _add_common(verify)
    verify.add_argument("--data", type=Path, default=None)
    verify.add_argument("--sample", type=int, default=None, help="rerun only the first N recorded runs (N >= 1)")
    verify.add_argument("--tolerance", type=float, default=1e-6,
                        help="largest accepted |recorded - rerun| where the environment is the records' own")
    verify.add_argument("--per-metric", action="store_true",
                        help="also print every (epoch, metric) of every rerun, and every cell of every item")
    verify.add_argument("--no-progress", action="store_true")
    verify.set_defaults(func=cmd_verify)

    render = sub.add_parser("render", help="tables, figures and the PDF from results/ (no training)")
    _add_common(render)
    render.add_argument("--studies", nargs="*", default=None, help="default: every study in experiments/")
    render.add_argument("--no-pdf", action="store_true", help="write tables and figures only")
    render.add_argument("--paper", type=Path, default=None, help="paper folder (default: the repository's paper/)")
    render.set_defaults(func=cmd_render)

    check = sub.add_parser("check", help="recompute every claim from the records; fail on a changed verdict, a "
                                         "missing or edited record, or a result number typed into the prose")
    _add_common(check)
    check.add_argument("--studies", nargs="*", default=None, help="default: every study in experiments/")
    check.add_argument("--paper", type=Path, default=None, help="paper folder whose prose is checked")
    check.set_defaults(func=cmd_check)

    ev = sub.add_parser("evaluate", help="score your own embeddings (.npz) with the thesis's metrics; JSON on stdout")
    ev.add_argument("file", type=Path, help="arrays query, query_labels [, reference, reference_labels]")
    ev.add_argument("--metrics", nargs="+", default=["precision_at_1", "recall_at_k", "map_at_r", "r_precision",
                                                      "knn_accuracy"],
                    help="any of: precision_at_1 recall_at_k map_at_r r_precision knn_accuracy excluded_queries "
                         "nmi ami verification triplet_accuracy episode_accuracy original_few_shot")
    ev.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="K values of Recall@K")
    ev.add_argument("--knn-k", type=int, default=3, help="neighbours voting in knn_accuracy (default 3)")
    ev.add_argument("--distance", choices=catalog.DISTANCES, default="euclidean")
    ev.add_argument("--seed", type=int, default=0, help="for k-means, pair, triplet and episode sampling")
    ev.add_argument("--n-way", type=int, default=5, help="classes per episode (episode_accuracy)")
    ev.add_argument("--k-shot", type=int, default=1, help="support items per class (episode_accuracy)")
    ev.add_argument("--episodes", type=int, default=600, help="episodes (episode_accuracy)")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    show_cmd = sub.add_parser("show", help="the expanded matrix (recorded / failed / missing), one run's resolved "
                                           "config (--run), and the estimated cost of what is missing")
    show_cmd.add_argument("study")
    _add_common(show_cmd)
    show_cmd.add_argument("--run", default=None, metavar="RUN_ID", help="one run (its id or a unique prefix)")
    _add_overrides(show_cmd)
    show_cmd.set_defaults(func=cmd_show)

    fetch_cmd = sub.add_parser("fetch", help="download, verify and unpack a dataset of the full profiles (mnist, "
                                             "fashion_mnist, cifar10, cifar100, cub200, cars196) or the resnet50 "
                                             "weights; resumable")
    fetch_cmd.add_argument("dataset")
    fetch_cmd.add_argument("--data", type=Path, default=None, help="dataset root (default: $HARNESS_DATA or ./data)")
    fetch_cmd.add_argument("--mirror", default=None, metavar="URL",
                           help="a base URL that replaces the source's host (the file's path is kept after it)")
    fetch_cmd.set_defaults(func=cmd_fetch)

    listing = sub.add_parser("list", help="the studies and their matrix sizes")
    listing.set_defaults(func=cmd_list)

    from harness.demo import command as demo  # the page of seed 004's similarity app (harness/demo)

    demo.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = ["harness", *argv]  # recorded in provenance as the command that made a run
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished runs are recorded; rerun the same command to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harness status | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
