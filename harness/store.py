"""Run records on disk: one JSON file per run at <results>/<study>/<profile>/<run_id>.json, typed, written atomically.

`RunRecord` is the record's schema: every record is validated when it is written and when it is read, and its
config must hash to its run_id (a record edited by hand, or one whose identity rules changed, is refused by name).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import identity
from harness.errors import HarnessError, RecordError
from harness.files import atomic_write

# 2: provenance.cpu_count is the machine's CPU count and provenance.torch_threads the torch thread count (version 1
# wrote the thread count as cpu_count); data.input_shape is what the model saw (image-file runs: the crop).
SCHEMA_VERSION = 2
RESULTS_DIR = Path("results")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CurvePoint(_Model):
    epoch: int
    step: int
    loss: float


class RunData(_Model):
    """What the run trained and was scored on."""

    train_size: int
    test_size: int
    val_size: int = 0
    unseen_test_size: int = 0
    seen_classes: list[int] = []
    val_classes: list[int] = []  # held out whole for class-disjoint validation (data.val_classes)
    num_classes: int
    input_shape: list[int]
    normalisation: dict[str, Any]


class RunError(_Model):
    type: str
    message: str
    traceback: str = ""


class Timing(_Model):
    # Durations and rates are never negative: a record saying so is refused (cost estimates read them).
    train_s: float = Field(default=0.0, ge=0)
    eval_s: float = Field(default=0.0, ge=0)
    wall_s: float = Field(ge=0)
    train_images_per_s: float | None = Field(default=None, ge=0)
    peak_rss_mb: float | None = Field(default=None, ge=0)


class GitState(_Model):
    commit: str | None = None
    dirty: bool | None = None


class Provenance(_Model):
    git: GitState
    source_sha256: str | None = None  # the project's code and study files (harness.provenance.source_hash)
    command: list[str] = []
    versions: dict[str, str | None] = {}
    host: str | None = None
    platform: str | None = None
    cpu: str | None = None
    cpu_count: int | None = None  # os.cpu_count()
    torch_threads: int | None = None  # torch.get_num_threads(): what CPU kernels ran on
    gpu: dict[str, Any] = {}
    accelerate: dict[str, Any] = {}
    dataset: dict[str, Any] = {}
    started: str | None = None
    finished: str | None = None
    # The command line's --set overrides this run took ({key: value}, already in its config); None without any.
    overrides: dict[str, Any] | None = None
    # What can change a float with the same code, config and seed (harness.provenance.numerics): a rerun in the
    # same numerical environment must be bit-identical; elsewhere `verify` compares at the table level. None in
    # records written before it was recorded.
    numerics: dict[str, Any] | None = None
    # The sha256 of the profile's pre-registration file (harness.preregistration) the run was made under; None
    # where the profile has none, and in records written before it was recorded.
    preregistration: str | None = None


class SavedWeights(_Model):
    file: str = Field(pattern=r"^[0-9a-f]{16}\.safetensors$")  # <run_id>.safetensors, beside the record
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: Literal["safetensors"] = "safetensors"
    tensors: int = Field(ge=1)  # how many tensors the state dict holds (a quick check before loading)


class RunRecord(_Model):
    schema_version: Literal[2]
    run_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    study: str
    profile: str
    axes: dict[str, Any]
    seed: int
    config: dict[str, Any]
    status: Literal["ok", "failed"]
    metrics: list[dict[str, float]]  # one entry per evaluated epoch: {"epoch": 5, "knn_accuracy": 0.83, ...}
    loss_curve: list[CurvePoint]
    data: RunData | None = None  # absent when a run failed before its data was split
    model_weights: dict[str, str] | None = None  # pretrained weights: file and sha256
    # The run's own final weights, when its study keeps them (execution.save_weights, a profile's `demo:` run):
    # file name (next to the record) and sha256. Left out of the digest when absent, so older records stay intact.
    weights: SavedWeights | None = None
    resumed_from_epoch: int | None = None
    # A declared search's facts (harness.search): a trial run's method, trial, fold and sampler (name and seed);
    # a chosen run's method, winning trial and its objective. Absent elsewhere, and then out of the digest.
    search: dict[str, Any] | None = None
    error: RunError | None = None
    timing: Timing
    provenance: Provenance
    # sha256 of everything else in the record, set when it is written: `harness check` refuses a record whose
    # content no longer matches (a metric edited by hand). Not a signature: it catches edits, not forgery.
    digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, metrics: list[dict[str, float]]) -> list[dict[str, float]]:
        epochs = []
        for entry in metrics:
            if "epoch" not in entry or entry["epoch"] != int(entry["epoch"]):
                raise ValueError("every metrics entry needs an integer epoch")
            if not all(math.isfinite(v) for v in entry.values()):
                raise ValueError(f"metrics of epoch {entry['epoch']} are not all finite numbers")
            epochs.append(entry["epoch"])
        if epochs != sorted(set(epochs)):
            raise ValueError(f"evaluated epochs {epochs} are not increasing")
        return [{**entry, "epoch": int(entry["epoch"])} for entry in metrics]

    @model_validator(mode="after")
    def _consistent(self) -> RunRecord:
        if (self.status == "failed") != (self.error is not None):
            raise ValueError("a failed record carries an error, and only a failed one")
        if self.seed != self.config.get("seed"):
            raise ValueError(f"seed {self.seed} differs from the config's seed {self.config.get('seed')}")
        expected = identity.run_id(self.config)
        if expected != self.run_id:
            raise ValueError(f"its config hashes to run_id {expected}, not {self.run_id} (edited by hand, or "
                             "written under other identity rules)")
        return self

    def last_metrics(self) -> dict[str, float]:
        return self.metrics[-1] if self.metrics else {}

    def content_digest(self) -> str:
        """sha256 of the record without its digest, in one canonical JSON form."""
        # A record without saved weights hashes as records did before the field existed.
        exclude = {"digest"} | {key for key in ("weights", "search") if getattr(self, key) is None}
        # Likewise a run without --set overrides, and one written before numerics were recorded.
        later = {key for key in ("overrides", "numerics", "preregistration") if getattr(self.provenance, key) is None}
        if later:
            exclude = {**dict.fromkeys(exclude, True), "provenance": later}
        text = json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True, allow_nan=False,
                          separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def intact(self) -> bool:
        """Whether the record is as it was written (its digest matches its content)."""
        return self.digest is not None and self.digest == self.content_digest()


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record in version 2's terms (nothing measured changes; one field is renamed)."""
    if raw.get("schema_version") == 1 and isinstance(raw.get("provenance"), dict):
        provenance = dict(raw["provenance"])
        provenance["torch_threads"] = provenance.pop("cpu_count", None)  # what version 1 actually recorded
        raw = {**raw, "schema_version": 2, "provenance": provenance}
    return raw


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "record"
    return f"{where}: {error['msg']}"


def validate(raw: Any) -> RunRecord:
    """A RunRecord from a dict (a record being written, or a file's content), or RecordError saying why not."""
    if isinstance(raw, RunRecord):
        return raw
    if not isinstance(raw, dict):
        raise RecordError("not a JSON object")
    try:
        return RunRecord.model_validate(_upgrade(raw))
    except ValidationError as exc:
        raise RecordError(_first_error(exc)) from None


def _safe(kind: str, name: str) -> str:
    """Refuse names that could leave the results folder (`../x`, `/abs`, hidden files)."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise RecordError(f"{kind} name {name!r} is not allowed: use letters, digits, '_', '-', '.'")
    return name


def run_dir(results: Path, study: str, profile: str) -> Path:
    return Path(results) / _safe("study", study) / _safe("profile", profile)


def record_path(results: Path, study: str, profile: str, run_id: str) -> Path:
    return run_dir(results, study, profile) / f"{_safe('run', run_id)}.json"


def checkpoint_path(results: Path, study: str, profile: str, run_id: str) -> Path:
    """Where an unfinished run keeps its per-epoch checkpoint (hidden, deleted once the record is written)."""
    return run_dir(results, study, profile) / f".{_safe('run', run_id)}.ckpt"


def state_path(results: Path, study: str, profile: str, run_id: str) -> Path:
    """Where a run that others continue from keeps its final state (hidden, not committed: rerunning the run
    rebuilds it bit for bit on CPU)."""
    return run_dir(results, study, profile) / f".{_safe('run', run_id)}.state"


def weights_path(results: Path, study: str, profile: str, run_id: str) -> Path:
    """Where a run that keeps its final weights saves them (safetensors: tensors only, no pickled code)."""
    return run_dir(results, study, profile) / f"{_safe('run', run_id)}.safetensors"


def write(results: Path, record: RunRecord | dict[str, Any]) -> Path:
    """Validate a record and write it atomically (temporary file in the same folder, fsync, rename)."""
    if isinstance(record, dict):
        try:
            record = validate(record)
        except RecordError as exc:
            raise RecordError(f"refusing to write an invalid record ({exc})") from None
    record = record.model_copy(update={"digest": record.content_digest()})
    path = record_path(results, record.study, record.profile, record.run_id)
    # allow_nan=False: a NaN metric is refused, never written (the schema refuses it first).
    text = json.dumps(record.model_dump(mode="json"), indent=1, sort_keys=True, allow_nan=False)
    atomic_write(path, text + "\n")
    return path


def read(path: Path) -> RunRecord:
    """A validated record; a corrupt or inconsistent file is a RecordError naming it."""
    try:
        # A FIFO or device named like a record would block or never end: only regular files are read.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise RecordError(f"{path}: not a regular file; remove it (a record is a JSON file)")
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: corrupt or unreadable run record ({exc}); delete it to rerun that run") from None
    if isinstance(raw, dict) and raw.get("schema_version") not in (1, SCHEMA_VERSION):
        raise RecordError(f"{path}: schema version {raw.get('schema_version')} (this harness reads "
                          f"{SCHEMA_VERSION}); rerun it or use the harness version that wrote it")
    try:
        record = validate(raw)
    except RecordError as exc:
        raise RecordError(f"{path}: corrupt run record ({exc}); delete it to rerun that run") from None
    if record.run_id != Path(path).stem:
        raise RecordError(f"{path}: record says run_id {record.run_id}, not its file name; delete or rename it")
    return record


@dataclass(frozen=True)
class Scan:
    """What a study's folder holds: finished records, failed records, and files that are not valid records."""

    ok: dict[str, RunRecord]
    failed: dict[str, RunRecord]
    corrupt: dict[str, str]  # run_id -> the error line


def scan(results: Path, study: str, profile: str) -> Scan:
    ok, failed, corrupt = {}, {}, {}
    for path in sorted(run_dir(results, study, profile).glob("*.json")):
        try:
            record = read(path)
        except RecordError as exc:
            corrupt[path.stem] = str(exc)
            continue
        (ok if record.status == "ok" else failed)[record.run_id] = record
    return Scan(ok, failed, corrupt)


def finished(results: Path, study: str, profile: str, run_id: str, *, rerun_failed: bool = False) -> bool:
    """Whether a valid record settles this run already (ok, or failed and failures are not being retried)."""
    path = record_path(results, study, profile, run_id)
    if not path.exists():
        return False
    try:
        record = read(path)
    except RecordError:
        return False
    return record.status == "ok" or not rerun_failed


def _lock_path(results: Path, study: str, profile: str, run_id: str) -> Path:
    return run_dir(results, study, profile) / f".{_safe('run', run_id)}.lock"


def check_writable(path: Path) -> Path:
    """A results folder, checked before anything is trained: a folder (or creatable) that this process can write."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HarnessError(f"--results {path}: {existing} exists and is not a folder")
    # access() also refuses a read-only file system to root; nothing is created until a run finishes.
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarnessError(f"--results {path}: {existing} is not writable by this user; choose a writable folder")
    return path


def check_lock(results: Path, study: str, profile: str, run_id: str) -> None:
    """RecordError unless the run's lock name is free or a regular file (checked before a matrix starts)."""
    path = _lock_path(results, study, profile, run_id)
    if path.is_symlink():
        raise RecordError(f"{path} is a symbolic link, not a lock file; remove it (someone else's file may be its "
                          "target) and run again")
    if path.exists() and not path.is_file():
        raise RecordError(f"{path} is not a regular file; remove it and run again")


def _open_lock(path: Path) -> int:
    """The lock file's descriptor, never following a link: in a shared results folder a link placed at the lock's
    name must not make us create, truncate or write the file it points to."""
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())  # who holds it, for a human
        return fd
    except FileExistsError:
        pass
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RecordError(f"{path} is a symbolic link, not a lock file; remove it (someone else's file may be "
                              "its target) and run again") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RecordError(f"{path} is not a regular file; remove it and run again")
    return fd


@contextlib.contextmanager
def claim(results: Path, study: str, profile: str, run_id: str) -> Iterator[bool]:
    """Hold an exclusive lock on one run for as long as the block runs; yields False if another process has it.

    Processes sharing a results folder (two shells, a Slurm array, several machines on one file system) each
    claim a run before training it, so no run is trained twice at once. The lock is an flock on
    `.<run_id>.lock`: the kernel releases it when its process dies, so a killed job leaves no stale claim.
    Callers check `finished` again after claiming: a run may have been completed while they were waiting.
    """
    path = _lock_path(results, study, profile, run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(path)
    except PermissionError:
        raise RecordError(f"{path.parent}: not writable by this user (each run's lock and record go there); fix "
                          "its permissions or choose another --results") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)
