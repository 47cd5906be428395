"""Command line: `harness run|status|verify|render`. User errors are one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import catalog, spec, store
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


def cmd_run(args: argparse.Namespace) -> int:
    import contextlib

    import torch
    from accelerate import Accelerator
    from accelerate.utils import broadcast_object_list

    from harness import train  # imports torch: only commands that train pay for it

    study = spec.load(args.study, args.profile)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    world = accelerator.num_processes
    if args.processes is not None and args.processes != world:
        raise HarnessError(f"--processes {args.processes} requested but {world} process(es) started; on a CPU box "
                           f"launch with `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {args.processes} -m harness "
                           f"run ...` (accelerate launch --cpu starts a single process there)")
    main = accelerator.is_main_process

    def say(*parts: object) -> None:  # one voice for a multi-process launch
        if main:
            print(*parts, file=sys.stderr)
    plan = planner.make(study, args.results, shard_spec=args.shard, rerun_failed=args.rerun_failed)
    # Every dataset the plan needs is found and verified, and the environment read, before anything is written
    # or trained.
    from harness import data as datasets

    train.workers_setting()
    for name in dict.fromkeys(run.config.data.dataset for run in plan.todo):
        datasets.load(name, args.data)
    for run_id, why in plan.corrupt.items():
        say(f"warning: {why} (it will be rerun)")
    skipped = f", {len(plan.failed)} failed kept (--rerun-failed retries them)" if plan.failed and not args.rerun_failed else ""
    say(f"{study.name}/{study.profile}: {len(study.runs)} runs in the matrix"
          f"{f', shard {args.shard}' if args.shard else ''}: {len(plan.done)} recorded, {len(plan.todo)} to run"
          f"{skipped}")
    command = args.argv
    failed = 0
    start = time.perf_counter()
    for number, run in enumerate(plan.todo, 1):
        label = " ".join(f"{k}={v}" for k, v in run.axes.items())
        say(f"[{number}/{len(plan.todo)}] {run.run_id} {label} seed={run.seed}")
        # The main process claims the run for all of its processes and tells them whether to go.
        claim = store.claim(args.results, study.name, study.profile, run.run_id) if main \
            else contextlib.nullcontext(None)
        with claim as mine:
            go = [bool(mine) and not store.finished(args.results, study.name, study.profile, run.run_id,
                                                    rerun_failed=args.rerun_failed)] if main else [None]
            if world > 1:
                broadcast_object_list(go)
            if not go[0]:
                say("    skipped: another process is running it or has just recorded it")
                continue
            # Checkpoints hold one process's RNG states, so resuming is offered for single-process runs.
            checkpoint = store.checkpoint_path(args.results, study.name, study.profile, run.run_id) \
                if world == 1 else None
            record = train.execute(run, data_root=args.data, progress=_progress_wanted(args) and main,
                                   command=command, checkpoint=checkpoint, accelerator=accelerator)
            if not main:
                continue
            path = store.write(args.results, record)
            if checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
        remaining = len(plan.todo) - number
        eta = f"; about {(time.perf_counter() - start) / number * remaining / 60:.1f} min left" if remaining else ""
        if record.status == "ok":
            say(f"    ok in {record.timing.wall_s:.1f} s: {_fmt_metrics(record)} -> {path}{eta}")
        else:
            failed += 1
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
    from harness import train

    study = spec.load(args.study, args.profile)
    scan = store.scan(args.results, study.name, study.profile)
    recorded = [r for r in study.runs if r.run_id in scan.ok]
    if not recorded:
        raise HarnessError(f"no finished runs of {study.name}/{study.profile} in {args.results} to verify; "
                           f"run `harness run {study.name} --profile {study.profile}` first")
    chosen = recorded[: args.sample] if args.sample else recorded
    print(f"{study.name}/{study.profile}: rerunning {len(chosen)} of {len(recorded)} recorded runs "
          f"(tolerance {args.tolerance} absolute)", file=sys.stderr)
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as scratch:
        for run in chosen:
            rerun = train.execute(run, data_root=args.data, progress=_progress_wanted(args))
            store.write(Path(scratch), rerun)
            old = {m["epoch"]: m for m in scan.ok[run.run_id].metrics}
            print(f"{run.run_id} {run.axes} seed={run.seed}: {rerun.status}")
            for new in rerun.metrics:
                for metric, value in new.items():
                    if metric == "epoch":
                        continue
                    before = old.get(new["epoch"], {}).get(metric, math.nan)
                    diff = abs(value - before)
                    worst = max(worst, diff if math.isfinite(diff) else math.inf)
                    verdict = "identical" if diff == 0 else ("agrees" if diff <= args.tolerance else "DIFFERS")
                    print(f"  epoch {new['epoch']:>3} {metric:<16} recorded {before:.6f} rerun {value:.6f} "
                          f"|diff| {diff:.2e} {verdict}")
    ok = worst <= args.tolerance
    print(f"largest difference {worst:.2e}: {'all within' if ok else 'OUTSIDE'} tolerance {args.tolerance}")
    return 0 if ok else 1


def cmd_render(args: argparse.Namespace) -> int:
    from harness import render

    args.paper = args.paper or render.PAPER_DIR
    studies = args.studies or spec.list_studies()
    written = render.render(studies, args.profile, args.results, args.paper)
    print(f"rendered {len(written)} files for {', '.join(studies)} (profile {args.profile}) into "
          f"{args.paper / 'generated'}", file=sys.stderr)
    if not args.no_pdf:
        pdf = render.compile_pdf(args.paper)
        if pdf:
            print(f"PDF: {pdf}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from harness import evaluate

    try:
        with np.load(args.file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise HarnessError(f"{args.file}: no such file") from None
    except (OSError, ValueError, EOFError):
        raise HarnessError(f"{args.file}: not a .npz archive of plain numeric arrays (write it with numpy.savez)") \
            from None
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


def cmd_list(args: argparse.Namespace) -> int:
    for name in spec.list_studies():
        study_file = spec.load_study_file(spec.study_path(name))
        sizes = ", ".join(f"{p} {len(spec.load(name, p, components=False).runs)} runs" for p in spec.PROFILES)
        print(f"{name}: {study_file.title} ({sizes})")
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
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="done / failed / missing runs per profile")
    status.add_argument("study")
    status.add_argument("--profile", default=None, help="one profile (default: all)")
    status.add_argument("--results", type=Path, default=store.RESULTS_DIR)
    status.add_argument("-v", "--verbose", action="store_true", help="list missing runs too")
    status.set_defaults(func=cmd_status)

    verify = sub.add_parser("verify", help="rerun recorded runs in a scratch folder and compare their metrics")
    verify.add_argument("study")
    _add_common(verify)
    verify.add_argument("--data", type=Path, default=None)
    verify.add_argument("--sample", type=int, default=None, help="rerun only the first N recorded runs")
    verify.add_argument("--tolerance", type=float, default=1e-6, help="largest accepted |recorded - rerun|")
    verify.add_argument("--no-progress", action="store_true")
    verify.set_defaults(func=cmd_verify)

    render = sub.add_parser("render", help="tables, figures and the PDF from results/ (no training)")
    _add_common(render)
    render.add_argument("--studies", nargs="*", default=None, help="default: every study in experiments/")
    render.add_argument("--no-pdf", action="store_true", help="write tables and figures only")
    render.add_argument("--paper", type=Path, default=None, help="paper folder (default: the repository's paper/)")
    render.set_defaults(func=cmd_render)

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

    listing = sub.add_parser("list", help="the studies and their matrix sizes")
    listing.set_defaults(func=cmd_list)
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


if __name__ == "__main__":
    sys.exit(main())
