"""Where a run's time goes: one run of each study's quick profile executed in this process with every stage timed.

Stages: process start (importing the harness and torch, measured in a fresh interpreter), data (dataset build,
class split, batch assembly), setup (model, loss, optimizer), forward, loss and miner, backward, optimizer,
evaluation embedding (the eval-mode passes), metrics (the rest of evaluation), checkpoint (per-epoch state) and
record (provenance, validation, writing the JSON). What no stage claims (the loop's bookkeeping, the progress
bar) is "other". Timers wrap the harness's own functions and the modules' forward hooks; nothing is changed.

    python -m tests.bench.stages [study ...]     prints the table (every study by default)
    make bench                                   runs it as tests/bench/test_stage_profile.py
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STAGES = ("process start", "data", "setup", "forward", "loss and miner", "backward", "optimizer",
          "evaluation embedding", "metrics", "checkpoint", "record", "other")


class Clock:
    """Seconds per stage; `inner` keeps a stage's time out of the stage that encloses it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.training = False

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
        return inner

    def hooks(self, module: Any, stage: str, only_training: bool = True) -> None:
        """Time a module's forward passes (while training, unless `only_training` is off)."""
        started: list[float] = []

        def before(*_: Any) -> None:
            started.append(time.perf_counter())

        def after(*_: Any) -> None:
            elapsed = time.perf_counter() - started.pop()
            if self.training or not only_training:
                self.seconds[stage] += elapsed

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)


def process_start() -> float:
    """Seconds a fresh interpreter takes to import what a run needs (torch, the harness's training stage)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import harness.execute, harness.train"], check=True)
    return time.perf_counter() - start


@contextlib.contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    """The harness's functions wrapped with timers for the duration of the block."""
    from harness import train

    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, wrapper: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, wrapper)

    # train's names for harness.data, .checkpoint, .provenance and .store: each function wrapped once.
    patch(train.datasets, "load", clock.timed("data", train.datasets.load))
    patch(train.datasets, "run_splits", clock.timed("data", train.datasets.run_splits))
    patch(train.checkpoints, "save", clock.timed("checkpoint", train.checkpoints.save))
    patch(train.provenance, "collect", clock.timed("record", train.provenance.collect))
    patch(train.store, "validate", clock.timed("record", train.store.validate))
    original_init, original_epoch = train.Trainer.__init__, train.Trainer.train_epoch

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        before = clock.seconds["data"]
        original_init(self, *args, **kwargs)
        clock.seconds["setup"] += time.perf_counter() - start - (clock.seconds["data"] - before)
        clock.hooks(self.model, "forward")
        clock.hooks(self.loss_fn, "loss and miner")
        if self.miner is not None:
            clock.hooks(self.miner, "loss and miner")
        self.accelerator.backward = clock.timed("backward", self.accelerator.backward)
        if self.optimizer is not None:
            self.optimizer.step = clock.timed("optimizer", self.optimizer.step)
        batches = self.pipeline.batches

        def timed_batches(epoch: int) -> Iterator[Any]:
            iterator = iter(batches(epoch))
            while True:
                start = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    clock.seconds["data"] += time.perf_counter() - start
                    return
                clock.seconds["data"] += time.perf_counter() - start
                yield item

        self.pipeline.batches = timed_batches

    def epoch(self: Any, *args: Any, **kwargs: Any) -> Any:
        clock.training = True
        try:
            return original_epoch(self, *args, **kwargs)
        finally:
            clock.training = False

    patch(train.Trainer, "__init__", init)
    patch(train.Trainer, "train_epoch", epoch)
    patch(train.Trainer, "embed", clock.timed("evaluation embedding", train.Trainer.embed))
    patch(train.Trainer, "evaluate", clock.timed("evaluation (all)", train.Trainer.evaluate))
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def first_run(study: str, baseline: bool = False) -> Any:
    """The profiled run of a study's quick profile: its first trained run with seed 0 (or first baseline)."""
    from harness import spec

    runs = spec.load(study, "quick").runs
    return next(r for r in runs if r.seed == 0 and ("baseline" in r.axes) == baseline and r.parent is None)


def profile(run: Any, start_s: float) -> dict[str, float]:
    """One run executed in this process with every stage timed; seconds per stage (STAGES), and the total."""
    from harness import store, train

    clock = Clock()
    with instrumented(clock), tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        # As `harness run` runs it: a checkpoint after every epoch (so a killed run resumes), then the record.
        record = train.execute(run, progress=False, accelerator=train.new_accelerator(),
                               checkpoint=store.checkpoint_path(Path(scratch), run.study, run.profile, run.run_id))
        write = time.perf_counter()
        store.write(Path(scratch), record)
        clock.seconds["record"] += time.perf_counter() - write
        total = time.perf_counter() - start
    seconds = dict(clock.seconds)
    seconds["metrics"] = seconds.pop("evaluation (all)", 0.0) - seconds.get("evaluation embedding", 0.0)
    seconds["process start"] = start_s
    seconds["other"] = total - sum(v for k, v in seconds.items() if k != "process start")
    seconds["total"] = total + start_s
    return {stage: seconds.get(stage, 0.0) for stage in (*STAGES, "total")}


def table(rows: dict[str, dict[str, float]]) -> str:
    """Seconds per stage (columns: runs), with each stage's share of the total."""
    names = list(rows)
    width = max(len(s) for s in (*STAGES, "total")) + 2
    lines = ["stage".ljust(width) + "".join(f"{n:>24}" for n in names)]
    for stage in (*STAGES, "total"):
        cells = []
        for name in names:
            value, total = rows[name][stage], rows[name]["total"]
            cells.append(f"{value:8.2f} s ({100 * value / total:4.1f} %)".rjust(24))
        lines.append(stage.ljust(width) + "".join(cells))
    return "\n".join(lines)


def profile_studies(studies: list[str]) -> dict[str, dict[str, float]]:
    start_s = process_start()
    rows = {}
    for study in studies:
        rows[study] = profile(first_run(study), start_s)
    rows["one_shot baseline"] = profile(first_run("one_shot", baseline=True), start_s)
    return rows


if __name__ == "__main__":
    from harness import spec

    print(table(profile_studies(sys.argv[1:] or spec.list_studies())))
