"""Shared fixtures: a scratch copy of experiments/ and paper/, and a helper that runs the CLI in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness import cli

REPO = Path(__file__).resolve().parent.parent


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
