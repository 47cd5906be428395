"""Per-epoch checkpoints of an unfinished run: written atomically, loaded weights-only (no code from the file runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.files import atomic_write


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a kill during the save leaves the previous checkpoint intact."""
    atomic_write(path, lambda handle: torch.save(state, handle))


def load(path: Path | None, run_id: str) -> dict[str, Any] | None:
    """A checkpoint of this run; None if absent or unusable (a truncated or foreign file starts the run over)."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file: start the run over rather than trust it
        return None
    return state if isinstance(state, dict) and state.get("run_id") == run_id else None
