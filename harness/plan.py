"""Which runs of a study still need doing: skip recorded ones, keep failed ones unless asked, take one shard."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness import store
from harness.errors import HarnessError
from harness.spec import Run, Study


@dataclass(frozen=True)
class Plan:
    study: Study
    todo: list[Run]
    done: list[Run]
    failed: list[Run]  # recorded as failed; rerun only when asked
    corrupt: dict[str, str]  # run_id -> why its file is not a valid record


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' with 1 <= i <= n (1-based, as Slurm array indices usually are)."""
    if text is None:
        return 1, 1
    match = re.fullmatch(r"(\d{1,9})/(\d{1,9})", text.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise HarnessError(f"--shard {text!r}: expected i/n with 1 <= i <= n, e.g. 3/16")
    return int(match.group(1)), int(match.group(2))


def shard(runs: list[Run], index: int, count: int) -> list[Run]:
    """The index-th of count disjoint slices; every run lands in exactly one slice, by its position in the matrix."""
    return [run for position, run in enumerate(runs) if position % count == index - 1]


def make(study: Study, results: Path, *, shard_spec: str | None = None, rerun_failed: bool = False) -> Plan:
    index, count = parse_shard(shard_spec)
    scan = store.scan(results, study.name, study.profile)
    mine = shard(study.runs, index, count)
    done = [r for r in mine if r.run_id in scan.ok]
    failed = [r for r in mine if r.run_id in scan.failed]
    todo = [r for r in mine if r.run_id not in scan.ok and (rerun_failed or r.run_id not in scan.failed)]
    return Plan(study, todo, done, failed, {k: v for k, v in scan.corrupt.items()
                                            if k in {r.run_id for r in mine}})
