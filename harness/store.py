"""Run records on disk: one JSON file per run at <results>/<study>/<profile>/<run_id>.json, written atomically."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import RecordError

SCHEMA_VERSION = 1
RESULTS_DIR = Path("results")
REQUIRED = ("schema_version", "run_id", "study", "profile", "axes", "seed", "config", "status", "metrics",
            "loss_curve", "timing", "provenance")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _safe(kind: str, name: str) -> str:
    """Refuse names that could leave the results folder (`../x`, `/abs`, hidden files)."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise RecordError(f"{kind} name {name!r} is not allowed: use letters, digits, '_', '-', '.'")
    return name


def run_dir(results: Path, study: str, profile: str) -> Path:
    return Path(results) / _safe("study", study) / _safe("profile", profile)


def record_path(results: Path, study: str, profile: str, run_id: str) -> Path:
    return run_dir(results, study, profile) / f"{_safe('run', run_id)}.json"


def checkpoint_path(results: Path, study: str, profile: str, run_id: str) -> Path:
    """Where an unfinished run keeps its per-epoch checkpoint (hidden, deleted once the record is written)."""
    return run_dir(results, study, profile) / f".{_safe('run', run_id)}.ckpt"


def write(results: Path, record: dict[str, Any]) -> Path:
    """Write a record atomically: temporary file in the same folder, flush, fsync, rename over the target."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"refusing to write a record without {', '.join(missing)}")
    path = record_path(results, record["study"], record["profile"], record["run_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, sort_keys=True, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide records from the group sharing a results folder
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: Path) -> dict[str, Any]:
    """A record, checked for the fields every record has; a corrupt file is a RecordError naming it."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: corrupt or unreadable run record ({exc}); delete it to rerun that run") from None
    if not isinstance(record, dict):
        raise RecordError(f"{path}: corrupt run record (not a JSON object); delete it to rerun that run")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"{path}: corrupt run record (missing {', '.join(missing)}); delete it to rerun that run")
    if record["run_id"] != Path(path).stem:
        raise RecordError(f"{path}: record says run_id {record['run_id']}, not its file name; delete or rename it")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(f"{path}: schema version {record.get('schema_version')} (this harness reads "
                          f"{SCHEMA_VERSION}); rerun it or use the harness version that wrote it")
    return record


@dataclass(frozen=True)
class Scan:
    """What a study's folder holds: finished records, failed records, and files that are not valid records."""

    ok: dict[str, dict[str, Any]]
    failed: dict[str, dict[str, Any]]
    corrupt: dict[str, str]  # run_id -> the error line


def scan(results: Path, study: str, profile: str) -> Scan:
    ok, failed, corrupt = {}, {}, {}
    for path in sorted(run_dir(results, study, profile).glob("*.json")):
        try:
            record = read(path)
        except RecordError as exc:
            corrupt[path.stem] = str(exc)
            continue
        (ok if record["status"] == "ok" else failed)[record["run_id"]] = record
    return Scan(ok, failed, corrupt)


def iter_profiles(results: Path, study: str) -> Iterator[str]:
    folder = Path(results) / _safe("study", study)
    if folder.is_dir():
        yield from sorted(p.name for p in folder.iterdir() if p.is_dir())


def finished(results: Path, study: str, profile: str, run_id: str, *, rerun_failed: bool = False) -> bool:
    """Whether a valid record settles this run already (ok, or failed and failures are not being retried)."""
    path = record_path(results, study, profile, run_id)
    if not path.exists():
        return False
    try:
        record = read(path)
    except RecordError:
        return False
    return record["status"] == "ok" or not rerun_failed


@contextlib.contextmanager
def claim(results: Path, study: str, profile: str, run_id: str) -> Iterator[bool]:
    """Hold an exclusive lock on one run for as long as the block runs; yields False if another process has it.

    Processes sharing a results folder (two shells, a Slurm array, several machines on one file system) each
    claim a run before training it, so no run is trained twice at once. The lock is an flock on
    `.<run_id>.lock`: the kernel releases it when its process dies, so a killed job leaves no stale claim.
    Callers check `finished` again after claiming: a run may have been completed while they were waiting.
    """
    path = run_dir(results, study, profile) / f".{_safe('run', run_id)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)
