"""Where a number came from: code version, command, software, machine, accelerator settings, data checksums."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "torchvision", "pytorch-metric-learning", "faiss-cpu", "accelerate", "numpy", "scikit-learn",
            "pydantic", "harness")
REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state() -> dict[str, Any]:
    """The commit of the project's own checkout and whether its files differ from it (results/ excluded).

    Only a repository whose top level is the project counts: a copy of the project inside another repository
    would otherwise record that repository's commit. Untracked files count as changes (a new module changes
    what runs); ignored ones (data, generated paper files) do not.
    """
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != REPO.resolve():
        return {"commit": None, "dirty": None}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=normal", "--", ".", ":(exclude)results")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def source_hash(root: Path = REPO) -> str:
    """sha256 over the project's code and study files (path and content of each, in order): what ran, with or
    without git."""
    digest = hashlib.sha256()
    files = [*sorted((root / "harness").rglob("*.py")), *sorted((root / "experiments").rglob("*.yaml")),
             *sorted((root / "experiments").rglob("*.csv"))]
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def collect(accelerator: Any, dataset: Any, *, command: list[str] | None, started: datetime,
            finished: datetime) -> dict[str, Any]:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    state = accelerator.state
    return {
        "git": git_state(),
        "source_sha256": source_hash(),
        "command": command if command is not None else sys.argv,
        "versions": versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": {"count": gpus, "model": torch.cuda.get_device_name(0) if gpus else None},
        "accelerate": {
            "num_processes": state.num_processes,
            "distributed_type": str(state.distributed_type),
            "mixed_precision": str(state.mixed_precision),
            "device": str(accelerator.device),
        },
        "dataset": {"name": dataset.name, "source": dataset.source, "sha256": dataset.checksums},
        "started": started.isoformat(),
        "finished": finished.isoformat(),
    }
