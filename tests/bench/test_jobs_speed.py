"""Packed runs: `harness run --jobs 2` against `--jobs 1` on the same matrix, measured side by side in one run.

What it measures: the wall time of one launch from empty results to every run recorded (process start, data
loading, training, evaluation, records), for a representative slice of the quick loss_epochs matrix: its
corrected block (5 losses x 3 seeds) and the 6 baseline runs, each trained for one epoch (`--set
train.epochs=1`), i.e. 21 runs on Fashion-MNIST (3,000 training images, the 10,000 test images). The whole quick
matrix (~10 min a pass here) would make the benchmark ~20 min; the chained original-protocol block is left out
because a chain is one unit of work (it cannot be packed), so it would measure the chain, not the packing.
The speed-up (jobs 1 wall / jobs 2 wall) is printed and stored in the benchmark's extra_info; both launches must
record every run, once, with the same metrics. Run with `make bench` on a quiet machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import store
from harness.data.idx import DEBIAN_FASHION_MNIST
from tests.conftest import REPO, corrected_only

# Thread counts differ (cores vs cores/2 per run), so float reductions may round differently (loss curves differ
# by ~1e-6 on the smoke profile); a metric may move by at most a few test items out of 10,000.
METRIC_TOLERANCE = 1e-3
pytestmark = pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(),
                                reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")


def launch(results: Path, jobs: int, env: dict) -> float:
    tick = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", "run", "loss_epochs", "--profile", "quick", "--results",
                           str(results), "--no-progress", "--jobs", str(jobs), "--set", "train.epochs=1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    wall_s = time.perf_counter() - tick
    assert done.returncode == 0, done.stderr[-3000:]
    if jobs > 1:
        trained = re.findall(r"^  w\d+ ok ([0-9a-f]{16})", done.stderr, flags=re.M)
        assert len(trained) == len(set(trained)) == 21, done.stderr[-3000:]
    return wall_s


def test_two_jobs_against_one_on_the_quick_loss_epochs_slice(benchmark, tmp_path: Path):
    experiments = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", experiments)
    path = experiments / "loss_epochs.yaml"
    path.write_text(yaml.safe_dump(corrected_only(yaml.safe_load(path.read_text()))))
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(experiments)}
    load_before = os.getloadavg()[0]
    one_s = launch(tmp_path / "jobs1", 1, env)
    two_s = benchmark.pedantic(launch, args=(tmp_path / "jobs2", 2, env), rounds=1, iterations=1)
    load_after = os.getloadavg()[0]
    one = store.scan(tmp_path / "jobs1", "loss_epochs", "quick").ok
    two = store.scan(tmp_path / "jobs2", "loss_epochs", "quick").ok
    assert len(one) == len(two) == 21 and set(one) == set(two)
    worst = max(abs(a[k] - b[k]) for r in one for a, b in zip(one[r].metrics, two[r].metrics) for k in a)
    ratio = one_s / two_s
    benchmark.extra_info.update({"jobs1_wall_s": one_s, "jobs2_wall_s": two_s, "speedup": ratio, "runs": 21,
                                 "cores": os.cpu_count(), "load_before": load_before, "load_after": load_after,
                                 "max_metric_difference": worst})
    print(f"\n21 runs: --jobs 1 {one_s:.0f} s, --jobs 2 {two_s:.0f} s, speed-up {ratio:.2f}x on {os.cpu_count()} "
          f"cores (1-min load {load_before:.1f} before, {load_after:.1f} after); largest metric difference between "
          f"the two launches {worst:.2e}")
    assert worst <= METRIC_TOLERANCE
