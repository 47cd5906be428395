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


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, a container's cpuset, a cluster's job slot),
    not the machine's count, which os.cpu_count() gives and which a share of a larger host would oversubscribe."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform (macOS)
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_id() -> str | None:
    """Vendor, family, model and stepping, and a short hash of the instruction-set flags, from /proc/cpuinfo: a
    model name such as "AMD EPYC" covers generations that compute differently."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    first = dict(line.split(":", 1) for line in text.split("\n\n", 1)[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in first.items()}
    flags = hashlib.sha256(fields.get("flags", "").encode()).hexdigest()[:12]
    return (f"{fields.get('vendor_id', '?')} family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
            f" stepping {fields.get('stepping', '?')} flags {flags}")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def collect(accelerator: Any, dataset: Any, *, command: list[str] | None, started: datetime,
            finished: datetime, overrides: dict[str, Any] | None = None,
            preregistration: str | None = None) -> dict[str, Any]:
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
        "overrides": overrides or None,  # the --set key=value pairs this run took
        "numerics": numerics(),
        "preregistration": preregistration,  # the sha256 of the profile's pre-registration, where it has one
    }


# Environment variables that set how many threads numerical libraries use (and so how sums are split).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def numerics() -> dict[str, Any]:
    """What can change a float result with the same code, config and seed: the CPU and the instruction set
    torch's kernels dispatch to, how many threads split each sum, the GPU and its libraries, the deterministic-
    algorithm settings and the torch build. Two runs agree bit for bit only where all of this agrees."""
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "thread_variables": {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }
