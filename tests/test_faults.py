"""Faults of the machine or the invocation stop a command with one line and leave no record (the next invocation
retries); what the science produced (a NaN loss, no positive pair) is a failed record. verify fails on any rerun
that did not finish and on any value present on one side only."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import checkpoint, spec, store, train
from tests.conftest import REPO


def one_line_error(code: int, err: str) -> None:
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err


def smoke_records(results: Path) -> list[Path]:
    return sorted((results / "loss_epochs" / "smoke").glob("*.json"))


def test_a_full_disk_while_checkpointing_stops_with_one_line_and_no_record(tmp_path, run_cli, monkeypatch):
    def full(path, state):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(checkpoint, "save", full)
    results = tmp_path / "results"
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                           "--shard", "1/7")
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: run ") and "No space left on device" in last and "free some" in last
    assert "no record was written" in last and not smoke_records(results)
    monkeypatch.undo()  # the disk has space again: the same command retries and records the run
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                           "--shard", "1/7")
    assert code == 0 and len(smoke_records(results)) == 1 and store.read(smoke_records(results)[0]).status == "ok"


def test_an_unexpected_exception_is_a_fault_not_a_failed_run(tmp_path, run_cli, monkeypatch):
    def broken(self, epoch, curve, bar=None):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(train.Trainer, "train_epoch", broken)
    results = tmp_path / "results"
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 2 and "stopped by RuntimeError: CUDA error" in err.strip().splitlines()[-1]
    assert not smoke_records(results)  # nothing that a rerun would keep


def test_diverged_embeddings_are_a_failed_record(monkeypatch):
    """NaN embeddings without a NaN loss are a result of the config (the model diverged), not a fault."""
    import torch

    from harness import pipeline

    (run,) = [r for r in spec.load("loss_epochs", "smoke").runs if r.axes.get("protocol") != "original" and r.axes.get("loss") == "nca"]
    real = pipeline.TensorPipeline.eval_batches
    monkeypatch.setattr(pipeline.TensorPipeline, "eval_batches",
                        lambda self, split, size: (torch.full_like(b, float("nan")) for b in real(self, split, size)))
    record = train.execute(run, progress=False)
    assert record.status == "failed" and "embeddings became NaN or infinite" in record.error.message


def test_a_killed_write_leaves_a_temporary_that_the_next_run_removes(tmp_path, run_cli):
    folder = tmp_path / "results" / "loss_epochs" / "smoke"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = folder / f".abc.json.tmp-{socket.gethostname()}-{int(dead.stdout)}-x1y2z3.tmp"
    stale.write_text('{"half": ')
    alive = folder / f".abc.json.tmp-{socket.gethostname()}-{os.getpid()}-x1y2z3.tmp"
    alive.write_text('{"being written": ')
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path / "results",
                           "--no-progress", "--shard", "1/7")
    assert code == 0 and f"removed {stale.name}" in err
    assert not stale.exists() and alive.exists()  # a live writer's file is left alone


def test_verify_fails_when_a_rerun_does_not_finish(tmp_path, run_cli, monkeypatch):
    results = tmp_path / "results"
    assert run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                   "--shard", "1/7")[0] == 0
    monkeypatch.setattr(train.Trainer, "step", lambda self, x, y: __import__("torch").tensor(float("nan")))
    code, out, _ = run_cli("verify", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 1 and "failed (RunFailure: loss became nan" in out and "1 rerun(s) did not finish" in out


def test_verify_fails_on_an_epoch_added_to_a_record_by_hand(tmp_path, run_cli):
    results = tmp_path / "results"
    assert run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                   "--shard", "1/7")[0] == 0
    (path,) = smoke_records(results)
    record = json.loads(path.read_text())
    record["metrics"].append({**record["metrics"][-1], "epoch": 3, "knn_accuracy": 0.999})
    path.write_text(json.dumps(record))
    code, out, _ = run_cli("verify", "loss_epochs", "--profile", "smoke", "--results", results, "--no-progress",
                           "--per-metric")
    assert code == 1 and "epoch   3 knn_accuracy" in out and "MISSING in the rerun" in out
    assert "NOT VERIFIED" in out


def test_a_fifo_named_like_a_record_is_reported_not_waited_on(tmp_path, run_cli):
    folder = tmp_path / "results" / "loss_epochs" / "smoke"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "0123456789abcdef.json")
    code, out, _ = run_cli("status", "loss_epochs", "--profile", "smoke", "--results", tmp_path / "results")
    assert code == 0 and "1 corrupt" in out and "not a regular file" in out


def test_status_into_a_closed_pipe_prints_no_traceback():
    command = f"{sys.executable} -m harness status loss_epochs -v | head -c 10 >/dev/null"
    done = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_a_symlinked_lock_is_refused_by_claim_itself(tmp_path):
    """The plan checks locks first; the claim refuses a link placed between that check and the claim too."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock = store.run_dir(tmp_path, "loss_epochs", "smoke") / ".0123456789abcdef.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    with pytest.raises(store.RecordError, match="symbolic link"):
        with store.claim(tmp_path, "loss_epochs", "smoke", "0123456789abcdef"):
            pass
    assert victim.read_text() == "precious"


def test_a_lock_left_by_another_process_is_reused_without_truncating(tmp_path):
    lock = store.run_dir(tmp_path, "loss_epochs", "smoke") / ".0123456789abcdef.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("other-host pid 1\n")
    with store.claim(tmp_path, "loss_epochs", "smoke", "0123456789abcdef") as mine:
        assert mine and lock.read_text() == "other-host pid 1\n"
    assert not lock.exists()
