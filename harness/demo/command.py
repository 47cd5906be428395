"""`harness demo`: pick a recorded run, check (or rebuild) its weights, and serve the page on localhost."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import spec, store
from harness.catalog import DATA_ROOT_HELP

# The study served when none is named: the thesis convnet on Fashion-MNIST, closest to the seed's MNIST app.
DEFAULT_STUDY = "loss_epochs"


def add_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="serve the interactive similarity page for a recorded run (localhost)")
    demo.add_argument("study", nargs="?", default=DEFAULT_STUDY, help=f"a study (default: {DEFAULT_STUDY})")
    demo.add_argument("--run", default=None, metavar="RUN_ID",
                      help="a recorded run of the study (default: the profile's demo run)")
    demo.add_argument("--profile", default=spec.DEFAULT_PROFILE, help=f"one of {', '.join(spec.PROFILES)}")
    demo.add_argument("--results", type=Path, default=store.RESULTS_DIR, help="results folder (default: results)")
    demo.add_argument("--data", type=Path, default=None, help=DATA_ROOT_HELP)
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                                                          "only)")
    demo.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    demo.add_argument("--rebuild", action="store_true",
                      help="retrain the run and save its weights beside its record (left unchanged), then exit")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.demo import runs
    from harness.errors import HarnessError

    if not 0 <= args.port <= 65535:
        raise HarnessError(f"--port {args.port}: expected 0 (a free port) to 65535")
    chosen = runs.choose(args.study, args.profile, args.results, args.run)
    if args.rebuild:
        runs.rebuild(chosen, data_root=args.data, progress=sys.stderr.isatty(), command=args.argv,
                     say=lambda line: print(line, file=sys.stderr))
        print(f"weights saved: serve them with harness demo {chosen.study.name} --profile {chosen.study.profile} "
              f"--run {chosen.run.run_id}" + (f" --results {args.results}" if args.results != store.RESULTS_DIR
                                               else ""))
        return 0
    runs.check_weights(chosen)  # before anything slow: a missing file is one line naming the rebuild command
    from harness.demo import server
    from harness.demo.engine import Engine

    sock = server.bind(args.host, args.port)
    print(f"loading {chosen.study.name}/{chosen.study.profile} run {chosen.run.run_id} and embedding its reference "
          "set...", file=sys.stderr)
    engine = Engine(chosen, data_root=args.data)
    try:
        server.serve(engine, sock)
    except KeyboardInterrupt:  # Ctrl-C is how a demo ends, not a failure
        pass
    finally:
        sock.close()
    print("demo stopped", file=sys.stderr)
    return 0
