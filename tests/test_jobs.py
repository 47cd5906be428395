"""harness run --jobs N: worker processes claim runs through the store's locks; every run is recorded once, a chain
stays in one worker, a worker killed mid-run leaves no record and the next launch finishes the matrix."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from harness import jobs, spec, store
from harness.errors import HarnessError
from harness import plan as planner
from tests.conftest import REPO, corrected_only


def test_a_chain_is_one_unit_of_work_in_parents_first_order():
    study = spec.load("loss_epochs", "smoke", components=False)
    plan = planner.make(study, Path("/nonexistent-results"))
    work = jobs.units(plan)
    assert sorted(len(u) for u in work) == [1] * 7 + [10]  # 5 corrected, 2 baselines; the original's chain of 10
    assert sorted(r.run_id for u in work for r in u) == sorted(r.run_id for r in plan.todo)
    chain = next(u for u in work if len(u) == 10)
    assert chain[0].parent is None and all(b.parent == a.run_id for a, b in zip(chain, chain[1:]))


def test_a_chain_whose_head_is_recorded_starts_at_its_first_missing_run(tmp_path: Path):
    from tests.conftest import recorded

    study = spec.load("loss_epochs", "smoke", components=False)
    head = next(r for r in study.runs if r.axes.get("protocol") == "original" and r.parent is None)
    store.write(tmp_path, recorded(head, train_size=300, train_s=1.0, eval_s=1.0, wall_s=3.0))
    chain = max(jobs.units(planner.make(study, tmp_path)), key=len)
    assert len(chain) == 9 and chain[0].parent == head.run_id


@pytest.mark.parametrize("jobs_, cores, threads", [(1, 2, 2), (2, 2, 1), (8, 2, 1), (4, 16, 4), (3, 16, 5)])
def test_each_worker_gets_its_share_of_the_cores(jobs_, cores, threads):
    assert jobs.threads_per_job(jobs_, cores) == threads


@pytest.mark.parametrize("count", ["0", "-2", "257"])
def test_a_bad_job_count_is_one_line(run_cli, tmp_path: Path, count):
    code, out, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path / "r", "--jobs", count)
    assert code == 2 and out == "" and err.startswith(f"error: --jobs {count}: expected a number of worker processes")
    assert not (tmp_path / "r").exists()


def _launch(results: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", "loss_epochs", "--profile", "smoke",
                             "--results", str(results), "--no-progress", "--jobs", "2", *extra],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, env=env)


def _recorded(log: str) -> Counter:
    return Counter(re.findall(r"^  w\d+ (?:ok|FAILED) ([0-9a-f]{16})", log, flags=re.M))


@pytest.mark.slow
def test_two_workers_record_every_run_once_with_chains_in_order(tmp_path: Path):
    results = tmp_path / "results"
    process = _launch(results)
    log = process.communicate(timeout=300)[1]
    assert process.returncode == 0, log
    study = spec.load("loss_epochs", "smoke", components=False)
    scan = store.scan(results, "loss_epochs", "smoke")
    assert set(scan.ok) == {r.run_id for r in study.runs} and not scan.failed and not scan.corrupt
    assert _recorded(log) == Counter({r.run_id: 1 for r in study.runs}), log  # none trained twice
    assert "17 of 17 runs recorded" in log and "2 worker process(es)" in log
    # Every child was trained after its parent, by the worker that trained the parent.
    starts = [(m[0], m[1]) for m in re.findall(r"^  w(\d+) \(pid \d+\) starts ([0-9a-f]{16})", log, flags=re.M)]
    order = {run_id: (i, worker) for i, (worker, run_id) in enumerate(starts)}
    for run in study.runs:
        if run.parent:
            assert order[run.parent][0] < order[run.run_id][0] and order[run.parent][1] == order[run.run_id][1]
    threads = {r.provenance.torch_threads for r in scan.ok.values()}
    assert threads == {jobs.threads_per_job(2)}
    assert not list(results.rglob("*.lock")) and not list(results.rglob("*.tmp"))


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_no_record_and_a_rerun_finishes(tmp_path: Path, experiments):
    # Four runs long enough (40 epochs on digits) to be killed in the middle of one.
    path = experiments / "loss_epochs.yaml"
    path.write_text(yaml.safe_dump(corrected_only(yaml.safe_load(path.read_text()), ("nca", "contrastive"))))
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(experiments)}
    results = tmp_path / "results"
    process = _launch(results, "--set", "train.epochs=40", env=env)
    lines, victim = [], None
    for line in process.stderr:
        lines.append(line)
        match = re.match(r"  w(\d+) \(pid (\d+)\) starts ([0-9a-f]{16}) loss=", line)
        if match and victim is None:
            # Killed inside its training epochs, once its first epoch's checkpoint exists: a fixed pause would be
            # too short on a slow or loaded host and past the run's end on a fast one.
            checkpoint = store.checkpoint_path(results, "loss_epochs", "smoke", match[3])
            deadline = time.monotonic() + 120
            while not checkpoint.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert checkpoint.exists(), f"run {match[3]} wrote no checkpoint in 120 s"
            os.kill(int(match[2]), signal.SIGKILL)
            victim, killed_worker = match[3], match[1]
            assert not store.record_path(results, "loss_epochs", "smoke", victim).exists()
    process.wait(timeout=300)
    first = "".join(lines)
    assert victim is not None, first
    assert process.returncode == 2, first
    assert f"worker {killed_worker} died (signal 9) during run {victim}: no record was written" in first
    recorded_first = _recorded(first)
    assert all(n == 1 for n in recorded_first.values()), first
    # The killed attempt wrote nothing; the surviving worker may have claimed the run after the kernel released
    # the dead worker's lock (if it had not walked past it yet).
    survivors = re.findall(rf"^  w(\d+) ok {victim}", first, flags=re.M)
    assert killed_worker not in survivors
    assert set(store.scan(results, "loss_epochs", "smoke").ok) == set(recorded_first)
    # The next launch claims and trains what is left, and nothing twice.
    again = _launch(results, "--set", "train.epochs=40", env=env)
    second = again.communicate(timeout=300)[1]
    assert again.returncode == 0, second
    both = recorded_first + _recorded(second)
    scan = store.scan(results, "loss_epochs", "smoke")
    assert len(scan.ok) == 4 and not scan.failed and not scan.corrupt
    assert both == Counter({run_id: 1 for run_id in scan.ok}), first + second
    assert scan.ok[victim].provenance.overrides == {"train.epochs": 40, "train.eval_epochs": [1, 2, 40]}
    assert not list(results.rglob("*.tmp")) and not list(results.rglob("*.ckpt"))


def test_a_worker_share_counts_the_cpus_this_process_may_use_not_the_machines(monkeypatch):
    # A job slot of 2 CPUs on a 64-CPU node (taskset, a cpuset, a scheduler's allocation): 2 jobs get 1 thread each.
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 9}, raising=False)
    assert jobs.threads_per_job(2) == 1 and jobs.threads_per_job(1) == 2


@pytest.mark.slow
def test_workers_of_a_killed_launch_stop_without_a_traceback(tmp_path: Path, experiments):
    """Issue 30: a SIGKILLed launcher left each worker printing BrokenPipe tracebacks as it reported its run."""
    path = experiments / "loss_epochs.yaml"
    path.write_text(yaml.safe_dump(corrected_only(yaml.safe_load(path.read_text()), ("nca", "contrastive"))))
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(experiments)}
    process = _launch(tmp_path / "results", "--set", "train.epochs=6", env=env)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if re.match(r"  w\d+ \(pid \d+\) starts", line):
            os.kill(process.pid, signal.SIGKILL)  # the launcher, not the workers
            break
    rest = process.stderr.read()  # until every worker (which shares this pipe) has exited
    process.wait(timeout=300)
    assert "Traceback" not in rest and "BrokenPipe" not in rest, "".join(lines) + rest


def test_devices_pin_one_gpu_per_worker_in_turn_and_are_refused_without_gpus(run_cli, tmp_path):
    """--devices 0,1,2,3 with --jobs 8: worker k sees GPU k mod 4 only (CUDA_VISIBLE_DEVICES, set before CUDA
    starts); on a machine without a GPU the launch is one line and nothing is written."""
    assert jobs.parse_devices("0,1,2,3", 4) == (0, 1, 2, 3)
    assert [jobs.device_of(k, (0, 1, 2, 3)) for k in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert jobs.device_of(3, ()) is None
    for text, available, words in (("0,0", 4, "distinct GPU indices"), ("a", 4, "distinct GPU indices"),
                                   ("4", 4, "has 4 GPU(s), indices 0 to 3"), ("0", 0, "no usable GPU")):
        with pytest.raises(HarnessError, match=re.escape(words)):
            jobs.parse_devices(text, available)
    if not torch.cuda.is_available():
        code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--devices", "0,1", "--results",
                               tmp_path / "r")
        assert code != 0 and "this machine has no usable GPU" in err and not (tmp_path / "r").exists()
