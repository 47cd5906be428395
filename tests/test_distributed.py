"""Two gloo processes against one, with the same global batch: the same loss at the first step, close metrics.

On a CPU-only box `accelerate launch --cpu --num_processes 2` starts a single process; torchrun with
ACCELERATE_USE_CPU=1 really starts two (README, "Many processes").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import store
from tests.conftest import REPO, corrected_only

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def launch(experiments: Path, results: Path, processes: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(experiments), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    harness = ["-m", "harness", "run", "loss_epochs", "--profile", "smoke", "--results", str(results),
               "--no-progress", "--processes", str(processes)]
    if processes == 1:
        cmd = [sys.executable, *harness]
    else:
        cmd = [TORCHRUN, "--standalone", "--nproc_per_node", str(processes), *harness]  # --standalone: a free port
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found")
def test_two_processes_match_one(experiments: Path, tmp_path: Path):
    path = experiments / "loss_epochs.yaml"
    doc = yaml.safe_load(path.read_text())
    # No dropout: each process would otherwise draw its own masks, which is correct but not comparable.
    doc["config"]["model"]["dropout"] = 0.0
    # two corrected runs; baselines do not train and the original's chain is tested elsewhere
    corrected_only(doc, ("contrastive", "proxy_anchor"))
    del doc["baselines"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    one, two = tmp_path / "one", tmp_path / "two"
    single = launch(experiments, one, 1)
    assert single.returncode == 0, single.stderr
    double = launch(experiments, two, 2)
    assert double.returncode == 0, double.stderr
    for run_id, a in store.scan(one, "loss_epochs", "smoke").ok.items():
        b = store.read(store.record_path(two, "loss_epochs", "smoke", run_id))
        assert a.provenance.accelerate["num_processes"] == 1
        assert b.provenance.accelerate["num_processes"] == 2
        assert b.loss_curve[0].loss == pytest.approx(a.loss_curve[0].loss, abs=1e-5), a.axes
        for x, y in zip(a.metrics, b.metrics):
            for metric in ("knn_accuracy", "precision_at_1", "map_at_r"):
                assert y[metric] == pytest.approx(x[metric], abs=0.03), (a.axes, metric)
    # Only the main process wrote: one record per run, no leftovers.
    assert len(list((two / "loss_epochs" / "smoke").glob("*.json"))) == 2
    assert not list(two.rglob(".*.lock")) and not list(two.rglob("*.tmp"))


def test_a_process_count_that_did_not_start_is_an_error(run_cli, tmp_path: Path):
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path, "--processes", "2")
    assert code == 2 and "--processes 2 requested but 1 process(es) started" in err and "torchrun" in err
    assert not any(tmp_path.iterdir())
