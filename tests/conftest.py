"""Shared fixtures: a scratch copy of experiments/ and paper/, and a helper that runs the CLI in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness import cli

REPO = Path(__file__).resolve().parent.parent


def corrected_only(doc: dict, losses: tuple[str, ...] | None = None) -> dict:
    """loss_epochs.yaml (as loaded) reduced to its corrected block, optionally to some losses: the small generic
    matrix many tests train, without the chain of the original's protocol (tested on its own)."""
    block = dict(doc["matrix"][0])
    block["loss"] = [v for v in block["loss"] if losses is None or v["label"] in losses]
    doc["matrix"] = [block]
    doc.pop("chains", None)
    doc.get("report", {}).pop("protocols", None)  # they compare with that chain
    doc.get("report", {}).pop("claims", None)
    for profile in doc["profiles"].values():  # their `budget` axis would be added to the block
        profile.pop("matrix", None)
    return doc


@pytest.fixture
def experiments(tmp_path: Path) -> Path:
    """A copy of experiments/ that a test may edit (typos, wrong types) without touching the repository."""
    target = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", target)
    return target


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `harness ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def clustered(n: int, classes: int, dim: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random class centres: embeddings with realistic overlap for metric tests."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, dim)) * 2
    x = centres[labels] + spread * rng.standard_normal((n, dim))
    return x.astype(np.float32), labels


def with_config(run, config):
    """`run` with another config, and so with that config's run_id (a record must hash to its run_id)."""
    import dataclasses

    from harness import identity

    return dataclasses.replace(run, config=config, run_id=identity.run_id(config.model_dump(mode="json")))


def fake_record(config: dict | None = None, status: str = "ok", **changes) -> dict:
    """A valid record dict (as store.write takes it) of a small config, for tests of storage and reading."""
    from harness import identity, store

    config = config if config is not None else {"seed": 0, "model": {"name": "thesis_convnet"}}
    record = {"schema_version": store.SCHEMA_VERSION, "run_id": identity.run_id(config), "study": "loss_epochs",
              "profile": "smoke", "axes": {"loss": "nca"}, "seed": config["seed"], "config": config,
              "status": status, "metrics": [{"epoch": 1, "knn_accuracy": 0.5}] if status == "ok" else [],
              "loss_curve": [{"epoch": 1, "step": 1, "loss": 1.0}], "timing": {"wall_s": 1.0},
              "provenance": {"git": {"commit": None, "dirty": None}}}
    if status == "failed":
        record["error"] = {"type": "RunFailure", "message": "loss became nan at epoch 1, step 1"}
    return {**record, **changes}
