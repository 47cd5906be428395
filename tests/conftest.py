"""Shared fixtures: a scratch copy of experiments/ and paper/, and a helper that runs the CLI in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

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
