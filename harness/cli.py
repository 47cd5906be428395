"""Command line: `harness run|show|status|verify|render|check|fetch|...`. User errors are one line on stderr and exit
code 2."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from harness import catalog, overrides, search, spec, store
from harness import plan as planner
from harness.errors import HarnessError


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=spec.DEFAULT_PROFILE,
                        help=f"one of {', '.join(spec.PROFILES)} (default: {spec.DEFAULT_PROFILE})")
    parser.add_argument("--results", type=Path, default=store.RESULTS_DIR, help="results folder (default: results)")


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help=catalog.DATA_ROOT_HELP)


def _progress_wanted(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def cmd_run(args: argparse.Namespace) -> int:
    from harness import execute, jobs, show

    jobs.check_count(args.jobs)
    if args.devices is not None:  # one machine, several GPUs: one --jobs worker per GPU (harness.jobs)
        import torch

        devices = jobs.parse_devices(args.devices, torch.cuda.device_count() if torch.cuda.is_available() else 0)
        args.jobs = args.jobs if args.jobs > 1 else len(devices)
    else:
        devices = ()
    study = spec.load(args.study, args.profile, overrides=overrides.parse(args.set))
    shard = (f", shard {args.shard}" if args.shard else "") + (f", unit(s) {args.unit}" if args.unit else "")
    if args.dry_run:  # before the accelerator and the data: a look costs nothing
        plan = planner.make(study, args.results, shard_spec=args.shard, rerun_failed=args.rerun_failed,
                            unit_spec=args.unit)
        print(f"{study.name}/{study.profile}: {len(plan.study.runs)} runs in the matrix{shard}: {len(plan.done)} "
              f"recorded, {len(plan.todo)} to run", file=sys.stderr)
        for run_id, why in plan.blocked.items():
            print(f"    not run: {run_id}: {why}", file=sys.stderr)
        # The inputs too, every one at once (as the launch's preflight would refuse them): a GPU owner fetches
        # before queueing, not after the first task fails.
        show.dry_run(plan, args.results, sys.stderr, jobs=args.jobs,
                     missing=execute.missing_inputs(plan.todo, args.data))
        return 0
    store.check_writable(args.results)
    accelerator = execute.launch_accelerator(args.processes)
    if args.jobs > 1 and accelerator.num_processes > 1:
        raise HarnessError(f"--jobs {args.jobs} packs runs into processes of one launch; this launch already has "
                           f"{accelerator.num_processes} processes: use one of --jobs and a multi-process launch")

    def say(line: str) -> None:  # one voice for a multi-process launch
        if accelerator.is_main_process:
            print(line, file=sys.stderr)


    plan = planner.make(study, args.results, shard_spec=args.shard, rerun_failed=args.rerun_failed,
                            unit_spec=args.unit)
    target = execute.Target(args.results, args.data, args.rerun_failed, tuple(args.argv), _progress_wanted(args))
    execute.preflight(target, study, plan, say)
    from harness import train

    if accelerator.device.type != "cuda" and any(r.execution.device == "cuda" for r in study.runs):
        raise HarnessError(f"{study.name}/{study.profile} asks for a GPU (execution.device: cuda) and this launch has "
                           f"none: {train.device_words(accelerator).removeprefix('device: ')}")
    kept = f", {len(plan.failed)} failed kept (--rerun-failed retries them)" \
        if plan.failed and not args.rerun_failed else ""
    # The device on the first line, after every check of the input (bad input stays one line).
    say(f"{study.name}/{study.profile}: {len(plan.study.runs)} runs in the matrix{shard}: {len(plan.done)} recorded, "
        f"{len(plan.todo)} to run{kept}; {train.device_words(accelerator)}")
    for run_id, why in plan.blocked.items():
        say(f"    not run: {run_id}: {why}")
    while True:
        if (args.jobs > 1 or devices) and plan.todo:  # --devices: even one worker is pinned to its GPU
            status = jobs.run_packed(target, args.jobs, plan.study, plan, devices)
            if status:
                return status
        else:
            execute.run_plan(target, plan.study, plan, accelerator, say)
        if study.search is None:
            return 0
        # A declared search: once a method's trials are all recorded its chosen runs can be planned (harness.search)
        tried = {r.run_id for r in plan.todo}
        plan = planner.make(study, args.results, shard_spec=args.shard, rerun_failed=args.rerun_failed,
                            unit_spec=args.unit)
        if not [r for r in plan.todo if r.run_id not in tried]:
            return 0
        say(f"{study.name}/{study.profile}: the search chose; {len(plan.todo)} chosen run(s) to run")


def cmd_status(args: argparse.Namespace) -> int:
    from harness import show

    sets = overrides.parse(args.set)
    for profile in [args.profile] if args.profile else list(spec.PROFILES):
        show.status(spec.load(args.study, profile, components=bool(sets), overrides=sets), args.results, sys.stdout,
                    args.verbose)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from harness import verification

    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise HarnessError(f"--tolerance {args.tolerance}: expected a finite number >= 0 (e.g. 1e-6)")
    if args.sample is not None and args.sample < 1:
        raise HarnessError(f"--sample {args.sample}: expected a number of runs >= 1 (leave it out to rerun all)")
    return 0 if verification.verify(args.study, args.profile, args.results, data=args.data,
                                    tolerance=args.tolerance, sample=args.sample, per_metric=args.per_metric,
                                    progress=_progress_wanted(args), overrides=overrides.parse(args.set),
                                    keep=args.keep, pdf=not args.no_pdf) else 1


def cmd_render(args: argparse.Namespace) -> int:
    from harness import render

    if args.paper is None and args.profile != spec.DEFAULT_PROFILE:
        # paper/ is the default profile's document: another profile's render gets a folder of its own, so that
        # rendering a smoke profile never replaces the thesis's chapters (--paper paper renders it there).
        args.paper = render.PAPER_DIR.parent / f"paper-{args.profile}"
        print(f"rendering profile {args.profile} into {args.paper} (paper/ holds the {spec.DEFAULT_PROFILE} "
              f"profile's document; --paper paper to render into it)", file=sys.stderr)
    args.paper = args.paper or render.PAPER_DIR
    if copied := render.prepare(args.paper):
        print(f"{args.paper}: copied {', '.join(copied)} from the project's paper/ (it had none)", file=sys.stderr)
    studies = list(dict.fromkeys(args.studies or spec.list_studies()))  # a study named twice is rendered once
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
    from harness import preregistration, render

    paper = args.paper or render.PAPER_DIR
    studies = list(dict.fromkeys(args.studies or spec.list_studies()))  # a study named twice is checked once
    found = preregistration.check(studies, args.profile, args.results, paper)
    for line in found.problems:
        print(f"check: {line}", file=sys.stderr)
    if found.problems:
        print(f"check: {len(found.problems)} problem(s) in {found.total} claims (profile {args.profile}; "
              f"{found.summary})", file=sys.stderr)
        return 1
    if found.registered and not found.verdicts:
        print(f"check: profile {args.profile} is pre-registered ({found.registered}): its {found.total} claims and "
              f"every study's seeds match it; no record of it yet; no result number typed into {paper} and no key "
              "outside code font")
        return 0
    registered = f"; pre-registered in {found.registered}, every record under it" if found.registered else ""
    print(f"check: {found.total} claims give their declared verdicts on the records of profile {args.profile} "
          f"({found.summary}; decided on Holm-adjusted p-values over the profile's {found.family} tests){registered}; "
          f"every record is intact; no result number typed into {paper} and no key outside code font")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from harness import show

    sets = overrides.parse(args.set)
    name, _, item = args.study.partition("/")  # study/item: the runs behind one table, figure or claim
    study = spec.load(name, args.profile, overrides=sets)  # components checked: a typo shows here, not at run
    study = search.with_chosen(study, store.scan(args.results, study.name, study.profile))
    if args.run:
        show.run(study, args.results, args.run, sys.stdout)
        return 0
    header = None
    if item:
        import dataclasses

        from harness import aggregate
        from harness.render import items

        frame = aggregate.long_frame(store.scan(args.results, study.name, study.profile).ok.values())
        behind = items.runs_behind(study.spec.report, item, frame, study.profile, study.axes)
        if frame.empty:
            header = (f"{study.name}/{item}: no records of profile {study.profile} yet, so which runs it reads is not "
                      "known; the whole matrix follows")
        else:
            study = dataclasses.replace(study, runs=[r for r in study.runs if r.run_id in behind])
            header = f"{study.name}/{item}: drawn from {len(study.runs)} runs"
    show.matrix(study, args.results, sys.stdout, header)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__, epilog=(
        "Every command that reads a study file imports the components it names by import path (a loss such as "
        "pytorch_metric_learning.losses.SupConLoss), which runs their module's code; only installed packages are "
        "imported."))
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every missing run of a study's matrix")
    run.add_argument("study")
    _add_common(run)
    _add_data(run)
    run.add_argument("--shard", default=None, help="run only slice i of n (1-based), e.g. 3/16")
    run.add_argument("--unit", default=None, help="run only these units (1-based; a chain is one unit), e.g. 7 or "
                                                  "1-4,9; `harness slurm` writes arrays of them")
    run.add_argument("--rerun-failed", action="store_true", help="also retry runs recorded as failed")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--processes", type=int, default=None,
                     help="the number of processes this launch must have (checked against the real world size)")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="train N runs at a time in N worker processes on this machine (each gets cores/N threads; "
                          "on one GPU they share it); runs are claimed through the same locks as --shard")
    run.add_argument("--devices", default=None, metavar="I,J,...",
                     help="GPUs of this machine for the --jobs workers, one each in turn (worker k sees only its "
                          "GPU); --jobs defaults to their number")
    overrides.add_argument(run)
    run.add_argument("--dry-run", action="store_true", help="print what would run and its estimated cost; train "
                                                            "nothing")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="done / failed / missing runs per profile")
    status.add_argument("study")
    status.add_argument("--profile", default=None, help="one profile (default: all)")
    status.add_argument("--results", type=Path, default=store.RESULTS_DIR)
    status.add_argument("-v", "--verbose", action="store_true", help="list missing runs too")
    overrides.add_argument(status)
    status.set_defaults(func=cmd_status)

    verify = sub.add_parser("verify", help="rerun recorded runs in a scratch folder and compare them with the "
                                           "records: bit for bit in the records' environment, else table by table")
    verify.add_argument("study", help="a study, or study/item: only the runs behind one table, figure or claim "
                                      "(its caption names it)")
    _add_common(verify)
    _add_data(verify)
    verify.add_argument("--sample", type=int, default=None, help="rerun only the first N recorded runs (N >= 1)")
    verify.add_argument("--tolerance", type=float, default=1e-6,
                        help="largest accepted |recorded - rerun| where the environment is the records' own")
    verify.add_argument("--per-metric", action="store_true",
                        help="also print every (epoch, metric) of every rerun, and every cell of every item")
    verify.add_argument("--no-progress", action="store_true")
    verify.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the reruns: DIR/report.md (every cell, recorded against rerun), DIR/results (the "
                             "profile's records with the reruns in place) and DIR/paper/build/main.pdf (the thesis "
                             "built from them); an earlier report in DIR is replaced")
    verify.add_argument("--no-pdf", action="store_true", help="with --keep: the report and results, no PDF")
    overrides.add_argument(verify)
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

    show_cmd = sub.add_parser("show", help="the expanded matrix (recorded / failed / missing), one run's resolved "
                                           "config (--run), and the estimated cost of what is missing")
    show_cmd.add_argument("study", help="a study, or study/item: only the runs behind one table, figure or claim "
                                         "(the names captions print)")
    _add_common(show_cmd)
    show_cmd.add_argument("--run", default=None, metavar="RUN_ID", help="one run (its id or a unique prefix)")
    overrides.add_argument(show_cmd)
    show_cmd.set_defaults(func=cmd_show)

    # Commands that live beside what they run (each module's add_parser and command).
    from harness import fetch, gpucheck, preregistration, show, slurm
    from harness.demo import command as demo  # the page of seed 004's similarity app (harness/demo)
    from harness.evaluate import command as evaluate

    evaluate.add_parser(sub)
    fetch.add_parser(sub)
    preregistration.add_parser(sub)
    gpucheck.add_parser(sub)
    slurm.add_parser(sub)
    show.add_list_parser(sub)
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
