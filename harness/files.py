"""File helpers every stage shares: content hashes and atomic replacement (a kill never leaves half a file)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (CUB archives and ResNet weights are hundreds of MB)."""
    make = (lambda: hashlib.md5(usedforsecurity=False)) if algorithm == "md5" else algorithm
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, make).hexdigest()


def bytes_hash(data: bytes, algorithm: str = "sha256") -> str:
    if algorithm == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return hashlib.new(algorithm, data).hexdigest()


def atomic_write(path: Path, write: Callable[[BinaryIO], None] | bytes | str, mode: int = 0o644) -> Path:
    """Write `path` through a temporary file in the same folder, flushed and fsynced, then renamed over it.

    A process killed at any moment leaves either the old file or the new one, plus at most a hidden temporary
    file that the next write of the same name does not trip over (temporary names are unique).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name says which process writes it, so a write killed midway can be recognised and removed later.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-",
                               suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp's 0600 would hide the file from a group sharing the folder
        with os.fdopen(fd, "wb") as handle:
            if callable(write):
                write(handle)
            else:
                handle.write(write.encode() if isinstance(write, str) else write)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_TEMPORARY = re.compile(r"^\..+\.tmp-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of writes whose process, on this host, is gone (killed mid-write).

    Writes of live processes, and of other hosts sharing the folder, are left alone.
    """
    removed = []
    host = socket.gethostname()
    for path in Path(folder).glob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
