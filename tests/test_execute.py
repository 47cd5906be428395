"""execute: runs are started parents first and never after a parent that did not finish; reruns are compared
metric by metric; the one Target crosses a process start."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

from harness import execute, spec
from harness.plan import parents_first


def chain_runs():
    study = spec.load("loss_epochs", "smoke", components=False)
    chain = parents_first([r for r in study.runs if r.axes.get("protocol") == "original"])
    assert chain[0].parent is None and all(b.parent == a.run_id for a, b in zip(chain, chain[1:]))
    return chain


def outcome(status):
    return None if status is None else SimpleNamespace(status=status)


def test_a_run_whose_parent_failed_or_went_elsewhere_is_not_started():
    chain = chain_runs()
    for parent_gives in ("failed", None):  # a failed record; another process has the parent
        started = []

        def train_one(run, gives=parent_gives):
            started.append(run.run_id)
            return outcome(gives if run is chain[1] else "ok")

        got = list(execute.in_order(chain, train_one))
        assert started == [chain[0].run_id, chain[1].run_id]  # nothing after the parent that did not finish
        assert [r is execute.PARENT_UNFINISHED for _, r in got[2:]] == [True] * (len(chain) - 2)
        assert [run for run, _ in got] == chain


def test_runs_outside_a_chain_go_on_after_a_failure():
    study = spec.load("loss_epochs", "smoke", components=False)
    free = [r for r in study.runs if r.parent is None][:3]
    got = list(execute.in_order(free, lambda run: outcome("failed")))
    assert [r.status for _, r in got] == ["failed"] * 3


def test_a_consumer_that_stops_starts_nothing_more():
    chain = chain_runs()
    started = []
    walk = execute.in_order(chain, lambda run: started.append(run) or outcome("ok"))
    next(walk)
    walk.close()
    assert started == chain[:1]


def test_metrics_compared_epoch_by_epoch_and_a_missing_value_is_infinite():
    recorded = [{"epoch": 1, "a": 0.5, "b": 0.25}, {"epoch": 2, "a": 0.75}]
    rerun = [{"epoch": 1, "a": 0.5, "b": 0.2}, {"epoch": 2, "a": 0.75, "c": 0.1}]
    lines = execute.compare_metrics(recorded, rerun, tolerance=0.01)
    assert [round(diff, 6) for _, diff in lines] == [0.0, 0.05, 0.0, math.inf]
    assert "identical" in lines[0][0] and "DIFFERS" in lines[1][0] and "MISSING in the record" in lines[3][0]
    assert execute.largest_difference(recorded, rerun) == (math.inf, 4)
    assert execute.largest_difference(recorded, recorded) == (0.0, 3)


def test_a_target_crosses_a_process_start():
    target = execute.Target(Path("results"), None, True, ("harness", "run", "x"), False)
    assert pickle.loads(pickle.dumps(target)) == target


def test_the_device_is_stated_and_a_study_that_needs_a_gpu_refuses_the_cpu(experiments, run_cli, tmp_path,
                                                                            monkeypatch):
    """`harness run` says on its first line which device it uses and why; execution.device: cuda refuses to
    fall back to the CPU, in one line, before any run."""
    import yaml

    from harness import spec, train

    accelerator = train.Accelerator(cpu=True)
    words = train.device_words(accelerator)
    assert words.startswith("device: cpu (") and ("no CUDA" in words or "finds no usable GPU" in words)
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    path = experiments / "calibration.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["execution"] = {"device": "cuda"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli("run", "calibration", "--profile", "smoke", "--results", tmp_path / "r", "--no-progress")
    assert code != 0 and "asks for a GPU (execution.device: cuda) and this launch has none" in err
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", tmp_path / "r2", "--no-progress",
                           "--dry-run")
    assert code == 0 and "device:" not in err  # a look at the plan names no device
    assert not (tmp_path / "r" / "calibration").exists() or not list((tmp_path / "r").rglob("*.json"))


def test_every_missing_input_is_listed_at_once_with_its_fetch_command(run_cli, tmp_path, monkeypatch):
    """cub_cars's full profile on an empty data folder: CUB, Cars and the ResNet-50 weights are named together in
    one line, each with the command that gets it, before anything runs or is written."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, _, err = run_cli("run", "cub_cars", "--profile", "full", "--results", tmp_path / "r", "--data",
                           tmp_path / "data", "--no-progress")
    assert code != 0 and err.count("\n") == 1 and err.startswith("error: 3 inputs are missing: (1) cub200")
    assert "(2) cars196" in err and "(3) model 'resnet50'" in err
    assert f"harness fetch cub200 --data {tmp_path / 'data'}" in err and "harness fetch resnet50" in err
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("*.json"))
