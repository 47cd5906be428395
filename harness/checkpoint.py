"""Per-epoch checkpoints of an unfinished run: written atomically, loaded weights-only (no code from the file runs).

A checkpoint that cannot be used (truncated, another run's, from an incompatible version of the code) is set
aside beside its place with a warning, never deleted: the run starts fresh and the file stays for a human to read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from harness.files import atomic_write


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a kill during the save leaves the previous checkpoint intact."""
    atomic_write(path, lambda handle: torch.save(state, handle))


def set_aside(path: Path, why: str) -> Path:
    """Rename an unusable checkpoint to <name>.unusable (replacing an older one) and say so on stderr."""
    target = path.with_name(path.name + ".unusable")
    path.replace(target)
    print(f"warning: {path} cannot be resumed from ({why}); moved to {target.name}, the run starts fresh",
          file=sys.stderr)
    return target


def final_state(path: Path | None, run_id: str, child: str) -> dict[str, Any]:
    """The final state that run `run_id` left for the runs continuing from it; a clear error when it is missing
    or not that run's (never a silent fresh start: the child's run_id promises its parent's history)."""
    from harness.errors import HarnessError

    again = (f"run {child} continues from run {run_id}, whose final state {path} is {{}}; rerun {run_id} to "
             "rebuild it (move its record aside and run the study again)")
    if path is None or not path.exists():
        raise HarnessError(again.format("missing"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, or not a state file
        raise HarnessError(again.format(f"unreadable ({type(exc).__name__})")) from None
    if not isinstance(state, dict) or state.get("run_id") != run_id or "trainer" not in state:
        raise HarnessError(again.format("another run's"))
    return state


def load(path: Path | None, run_id: str) -> dict[str, Any] | None:
    """This run's checkpoint, or None: absent, or unusable and set aside."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a checkpoint, or holding objects weights-only loading refuses
        set_aside(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"[:200])
        return None
    if not isinstance(state, dict) or state.get("run_id") != run_id:
        set_aside(path, "it belongs to another run")
        return None
    return state
