"""Kill a real training process with SIGKILL at several moments; restarted, it ends bit-identical to an unbroken run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from harness import checkpoint as checkpoints
from harness import spec, store, train
from tests.conftest import REPO, corrected_only


@pytest.fixture
def long_smoke(experiments: Path) -> Path:
    """The smoke profile stretched to 6 epochs, evaluated after each, so there is time to kill it mid-run."""
    path = experiments / "loss_epochs.yaml"
    data = yaml.safe_load(path.read_text())
    data["profiles"]["smoke"]["config"]["train"].update(epochs=6, eval_epochs=[1, 2, 3, 4, 5, 6])
    data["profiles"]["smoke"]["config"]["data"].update(train_per_class=60)
    # one run to kill and resume: the corrected proxy_anchor run alone (no original-protocol chain, no baselines)
    corrected_only(data, ("proxy_anchor",))
    del data["baselines"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return experiments


def harness_run(experiments: Path, results: Path) -> subprocess.Popen:
    # The child computes on this process's thread count: the unbroken reference is trained here, and a thread
    # count is part of what makes sums bit-identical (a host's default, or --other-host's, may differ).
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(experiments), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-m", "harness", "run", "loss_epochs", "--profile", "smoke",
                             "--results", str(results), "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_at_several_epochs_then_resume_is_bit_identical(long_smoke: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", long_smoke)
    (run,) = spec.load("loss_epochs", "smoke").runs
    reference = train.execute(run, progress=False)

    results = tmp_path / "results"
    checkpoint = store.checkpoint_path(results, "loss_epochs", "smoke", run.run_id)
    kills = 0
    for wanted_epoch in (1, 3, 4):  # kill after a checkpoint of this epoch exists, whatever the process is doing
        proc = harness_run(long_smoke, results)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if checkpoint.exists():
                state = torch.load(checkpoint, weights_only=True)
                if state["epoch"] >= wanted_epoch:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed; make the test run longer"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        assert not store.record_path(results, "loss_epochs", "smoke", run.run_id).exists()
    proc = harness_run(long_smoke, results)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    record = store.read(store.record_path(results, "loss_epochs", "smoke", run.run_id))
    assert kills == 3 and record.resumed_from_epoch >= 4
    assert record.metrics == reference.metrics
    assert record.loss_curve == reference.loss_curve
    assert not checkpoint.exists()


def test_an_unusable_checkpoint_is_set_aside_not_trusted(tmp_path: Path, capsys):
    path = tmp_path / ".x.ckpt"
    path.write_bytes(b"not a checkpoint")
    assert checkpoints.load(path, "x") is None
    assert not path.exists() and (tmp_path / ".x.ckpt.unusable").read_bytes() == b"not a checkpoint"
    assert "cannot be resumed from" in capsys.readouterr().err
    checkpoints.save(path, {"run_id": "other", "epoch": 1})
    assert checkpoints.load(path, "other")["epoch"] == 1
    assert checkpoints.load(path, "x") is None and (tmp_path / ".x.ckpt.unusable").exists()


def test_a_checkpoint_of_incompatible_code_is_set_aside_and_the_run_starts_fresh(tmp_path: Path, capsys):
    """Same run id, other weights shapes (the model's code changed): the run is not failed, the file is kept."""
    (run,) = [r for r in spec.load("loss_epochs", "smoke").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "nca"]
    path = tmp_path / ".run.ckpt"
    checkpoints.save(path, {"run_id": run.run_id, "epoch": 1, "trainer": {"model": {"fc.weight": torch.zeros(3)}},
                            "metrics": [], "loss_curve": [], "timing": {}})
    record = train.execute(run, progress=False, checkpoint=path)
    assert record.status == "ok" and record.resumed_from_epoch is None
    assert record.metrics == train.execute(run, progress=False).metrics
    assert (tmp_path / ".run.ckpt.unusable").exists()
    assert "cannot be resumed from (RuntimeError" in capsys.readouterr().err
