"""Packed runs (`harness run --jobs N`): N worker processes on one machine train a matrix's runs side by side.

Workers claim runs through the store's per-run locks, exactly as separate shells, --shard slices and other
machines do, so all of these mix freely on one results folder. A chain (runs that continue one another) is one
unit of work: the worker that claims its first run trains the rest in order. A worker killed at any moment
leaves no record, a lock the kernel has released, and at most a checkpoint that the next `harness run` resumes.
Workers are started with 'spawn' (a forked copy of a process that has touched torch's thread pools or CUDA is
not safe) and run torch with cores/N threads each; on one GPU the N workers share the device.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from harness import execute
from harness.units import duration
from harness import plan as planner
from harness.errors import HarnessError
from harness.spec import Run, Study

MAX_JOBS = 256
HEARTBEAT_S = 300.0  # a line on what every worker is doing when nothing else was said for this long


def parse_devices(text: str | None, available: int) -> tuple[int, ...]:
    """--devices '0,1,3' -> (0, 1, 3): GPU indices this machine has, each once; one line saying what is wrong."""
    if text is None:
        return ()
    pieces = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in pieces) or len(set(pieces)) != len(pieces):
        raise HarnessError(f"--devices {text!r}: expected distinct GPU indices separated by commas, e.g. 0,1,2,3")
    devices = tuple(int(p) for p in pieces)
    if available == 0:
        raise HarnessError(f"--devices {text}: this machine has no usable GPU (torch sees none); leave --devices "
                           "out to run on the CPU")
    if max(devices) >= available:
        raise HarnessError(f"--devices {text}: this machine has {available} GPU(s), indices 0 to {available - 1}")
    return devices


def device_of(index: int, devices: tuple[int, ...]) -> int | None:
    """The GPU worker `index` is pinned to (round robin over --devices), None without --devices."""
    return devices[index % len(devices)] if devices else None


def check_count(jobs: int) -> None:
    if not 1 <= jobs <= MAX_JOBS:
        raise HarnessError(f"--jobs {jobs}: expected a number of worker processes from 1 to {MAX_JOBS}")


def units(plan: planner.Plan) -> list[list[Run]]:
    """The runs to do, grouped into chains (parents first); a run outside any chain is a unit of its own."""
    return planner.units(plan.todo)


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Each worker's share of the CPUs this process may use (`cores`, else its affinity mask)."""
    from harness.provenance import usable_cpus

    return max(1, (cores or usable_cpus()) // jobs)


@dataclass(frozen=True)
class Settings:
    """What a worker needs from the command line (picklable: it crosses a process start)."""

    target: execute.Target
    threads: int
    loader_workers: int | None  # DataLoader workers per run, when $HARNESS_WORKERS does not say
    keep_state: frozenset[str]  # runs that others continue from
    devices: tuple[int, ...] = ()  # --devices: worker i sees only GPU devices[i % len(devices)]


def _worker(index: int, study: Study, work: list[list[Run]], settings: Settings, conn: Any, stop: Any) -> None:
    """One worker: walk the units (starting at its own offset, so workers begin on different ones), claim, train
    and record each run (execute.run_one, parents first: execute.in_order); report each step on `conn`."""
    # Thread pools read these when torch, numpy and faiss load, which happens below, after they are set.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(settings.threads)
    if settings.loader_workers is not None:
        os.environ["HARNESS_WORKERS"] = str(settings.loader_workers)
    if (device := device_of(index, settings.devices)) is not None:  # before CUDA starts: this worker's one GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: it stops the workers
    parent = os.getppid()
    current: list[str | None] = [None]

    def tell(*event: Any) -> None:
        try:
            conn.send(event)
        except OSError:  # the launch is gone (killed): nobody to tell and nothing to print; the run's lock is freed
            raise SystemExit(0) from None

    def stopped() -> bool:  # told to stop, or the launch is gone
        return stop.is_set() or os.getppid() != parent

    def until_stopped(unit: list[Run]) -> Any:
        for run in unit:
            if stopped():
                return
            yield run

    def train_one(run: Run) -> Any:
        current[0] = run.run_id
        record = execute.run_one(settings.target, study, run, accelerator,
                                 keep_state=run.run_id in settings.keep_state,
                                 on_claim=lambda: tell("start", index, run.run_id, os.getpid()))
        current[0] = None
        return record

    try:
        import torch

        torch.set_num_threads(settings.threads)
        accelerator = execute.launch_accelerator()
        order = work[index % len(work):] + work[:index % len(work)] if work else []
        for unit in order:
            if stopped():
                return
            for run, record in execute.in_order(until_stopped(unit), train_one):
                # None: another worker or process has it, or it is recorded: its children are theirs too.
                if record is None or record is execute.PARENT_UNFINISHED:
                    continue
                tell("done", index, run.run_id, record.status, record.timing.wall_s, execute.metrics_text(record),
                     f"{record.error.type}: {record.error.message}" if record.error else "")
    except HarnessError as exc:
        tell("fault", index, current[0], str(exc))
    except Exception as exc:  # noqa: BLE001 (a fault outside any run: reported as one line, the launch stops)
        detail = " ".join(str(exc).split())[:200]
        tell("fault", index, current[0], f"worker {index + 1} stopped by {type(exc).__name__}: {detail}")
    finally:
        conn.close()


def run_packed(target: execute.Target, jobs: int, study: Study, plan: planner.Plan,
               devices: tuple[int, ...] = ()) -> int:
    """Train the plan's runs in `jobs` worker processes; one line per start and finish, with every worker's
    current run and an ETA. A fault stops the launch after the runs in flight; a killed worker is reported."""
    from harness import show, train

    work = units(plan)
    threads = threads_per_job(jobs)
    loader = None if os.environ.get("HARNESS_WORKERS") else max(1, min(4, threads))
    settings = Settings(dataclasses.replace(target, progress=False), threads, loader,
                        frozenset(r.run_id for r in plan.todo if plan.children(r.run_id)), devices)
    train.workers_setting()  # a bad $HARNESS_WORKERS fails here, once, not in every worker
    say = _say
    count = min(jobs, len(work))
    say(f"{study.name}/{study.profile}: {count} worker process(es), {threads} torch thread(s) each, "
        f"{len(work)} unit(s) of work ({len(plan.todo)} runs; a chain is one unit)"
        + (f"; worker k on GPU {', '.join(f'{i + 1}: {device_of(i, devices)}' for i in range(count))}"
           if devices else ""))
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers, readers = [], {}
    labels = {run.run_id: show.labels(run) for run in plan.todo}
    for index in range(count):
        receive, send = context.Pipe(duplex=False)
        # A search's plan holds a function of spec.load's: the workers need the runs, not the search.
        process = context.Process(target=_worker, args=(index, dataclasses.replace(study, search=None), work,
                                                        settings, send, stop),
                                  name=f"harness-job-{index + 1}")
        process.start()
        send.close()  # the worker holds the only sending end: end of file means it is gone
        workers.append(process)
        readers[receive] = index
    running: dict[int, tuple[str, float]] = {}  # worker -> (run_id, start time)
    done, failed, faults, lost = 0, 0, [], []
    start = last_said = time.perf_counter()

    def now_line() -> str:
        busy = ", ".join(f"w{w + 1} {rid[:8]} ({duration(time.perf_counter() - t)})"
                         for w, (rid, t) in sorted(running.items())) or "none"
        left = len(plan.todo) - done
        eta = (f"; about {duration((time.perf_counter() - start) / done * left)} left" if done and left else "")
        return f"running: {busy}; {done}/{len(plan.todo)} done{eta}"

    try:
        while readers:
            ready = multiprocessing.connection.wait(list(readers), timeout=5.0)
            for conn in ready:
                index = readers[conn]
                try:
                    event = conn.recv()
                except (EOFError, OSError):  # the worker is gone: finished, or killed
                    del readers[conn]
                    workers[index].join()
                    code = workers[index].exitcode
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    if index in running:
                        run_id = running.pop(index)[0]
                        lost.append(f"worker {index + 1} died ({how}) during run {run_id}: no record was written; "
                                    "rerun the same command to retry it (a checkpoint, if any, is resumed)")
                        say(f"  LOST: {lost[-1]}")
                    elif code != 0:
                        lost.append(f"worker {index + 1} died ({how}) between runs; rerun the same command to "
                                    "train what it left")
                        say(f"  LOST: {lost[-1]}")
                    continue
                kind, index, run_id = event[:3]
                if kind == "start":
                    running[index] = (run_id, time.perf_counter())
                    say(f"  w{index + 1} (pid {event[3]}) starts {run_id} {labels.get(run_id, '')}")
                elif kind == "done":
                    running.pop(index, None)
                    done += 1
                    status, wall_s, metrics, error = event[3:]
                    if status == "ok":
                        say(f"  w{index + 1} ok {run_id} in {wall_s:.1f} s: {metrics} | {now_line()}")
                    else:
                        failed += 1
                        say(f"  w{index + 1} FAILED {run_id} ({error}) | {now_line()}")
                elif kind == "fault":
                    running.pop(index, None)
                    faults.append(event[3])
                    stop.set()  # the others finish the run they hold, then stop
                    say(f"  w{index + 1} stopped: {event[3]}; the other workers stop after their current run")
                last_said = time.perf_counter()
            if running and time.perf_counter() - last_said > HEARTBEAT_S:
                say(f"  {now_line()}")
                last_said = time.perf_counter()
    except KeyboardInterrupt:
        stop.set()
        for process in workers:  # a run cut short leaves no record: the next launch retries (or resumes) it
            process.terminate()
        for process in workers:
            process.join()
        raise
    for process in workers:
        process.join()
    say(f"{study.name}/{study.profile}: {done} of {len(plan.todo)} runs recorded in "
        f"{time.perf_counter() - start:.0f} s with {count} workers, {failed} failed")
    if faults:
        raise HarnessError(faults[0])
    if lost:
        raise HarnessError(f"{len(lost)} worker(s) died mid-run ({lost[0]})")
    return 0


def _say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)
