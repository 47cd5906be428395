"""Processes sharing one results folder: every run is trained and recorded exactly once, nothing corrupt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import store
from tests.conftest import REPO


def test_a_claimed_run_cannot_be_claimed_again(tmp_path: Path):
    with store.claim(tmp_path, "loss_epochs", "smoke", "0123456789abcdef") as first:
        assert first
        with store.claim(tmp_path, "loss_epochs", "smoke", "0123456789abcdef") as second:
            assert not second
        lock = tmp_path / "loss_epochs" / "smoke" / ".0123456789abcdef.lock"
        assert "pid" in lock.read_text()
    assert not lock.exists()
    with store.claim(tmp_path, "loss_epochs", "smoke", "0123456789abcdef") as again:
        assert again


def test_claim_is_released_when_the_holder_dies(tmp_path: Path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from harness import store\n"
        "with store.claim(%r, 'loss_epochs', 'smoke', 'aaaaaaaaaaaaaaaa') as got:\n"
        "    print(got, flush=True); time.sleep(60)\n") % (str(REPO), str(tmp_path))],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "True"
    with store.claim(tmp_path, "loss_epochs", "smoke", "aaaaaaaaaaaaaaaa") as got:
        assert not got
    holder.kill()
    holder.wait()
    with store.claim(tmp_path, "loss_epochs", "smoke", "aaaaaaaaaaaaaaaa") as got:
        assert got


@pytest.mark.slow
@pytest.mark.parametrize("shards", [(None, None), ("1/2", "2/2"), ("1/1", "1/2")])
def test_two_processes_share_a_results_folder(tmp_path: Path, shards):
    results = tmp_path / "results"

    def launch(shard):
        cmd = [sys.executable, "-m", "harness", "run", "loss_epochs", "--profile", "smoke", "--results",
               str(results), "--no-progress"] + (["--shard", shard] if shard else [])
        return subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)

    procs = [launch(s) for s in shards]
    logs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    trained = sum(log.count("    ok in ") for log in logs)
    scan = store.scan(results, "loss_epochs", "smoke")
    # 5 losses, the original's chain of 5 losses x 2 budgets, 2 baselines
    assert len(scan.ok) == 17 and not scan.failed and not scan.corrupt
    assert trained == 17, logs  # no run trained twice, and every child after its parent
    assert not list(results.rglob("*.lock")) and not list(results.rglob("*.tmp"))
