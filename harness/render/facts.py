"""What produced a study's numbers, read from its run records (not from the YAML): the setup paragraph's facts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.render import baselines
from harness.render.axes import label_text
from harness.store import RunRecord


def setup_facts(records: Sequence[RunRecord], profile: str, description: str) -> dict[str, Any]:
    """Dataset, model, optimizer, seeds, code versions and devices of the finished runs (at least one); the model,
    optimizer and epochs are those of the trained runs (a baseline trains nothing), the baselines are named."""
    ok = [r for r in records if r.status == "ok"]
    trained = [r for r in ok if not baselines.is_baseline(r)] or ok
    cfg = trained[0].config
    # Every fact is read over all the records it describes: a study whose runs differ (splits, sweeps of the
    # dimension or the batch) shows the range, not one record's value.
    return {
        "profile": profile,
        "description": description,
        "dataset": cfg["data"]["dataset"],
        "datasets": sorted({r.config["data"]["dataset"] for r in ok}),
        "train_size": span(r.data.train_size for r in trained if r.data),
        "test_size": span(r.data.test_size for r in trained if r.data),
        "model": span(r.config["model"]["name"] for r in trained),
        "embedding_dim": span(r.config["model"].get("embedding_dim") for r in trained
                              if r.config["model"].get("embedding_dim")),
        "optimizer": cfg["optimizer"],
        "optimizers": span(r.config["optimizer"]["name"] for r in trained),
        "learning_rate": span(r.config["optimizer"].get("lr") for r in trained if r.config["optimizer"].get("lr")),
        "batch_size": span(r.config["train"]["batch_size"] for r in trained),
        "epochs": span(r.config["train"]["epochs"] for r in trained),
        "eval_epochs": sorted({e for r in trained for e in r.config["train"]["eval_epochs"]}),
        "seeds": sorted({r.seed for r in ok}),
        "runs": len(ok),
        "failed": len(records) - len(ok),
        "commits": sorted({code_version(r) for r in ok}),
        "devices": sorted({r.provenance.accelerate["device"] for r in ok}),
        "train_hours": sum(r.timing.wall_s for r in records) / 3600.0,
        "failures": failures(records),
        "baselines": [baselines.name(label) for label in baselines.ordered_labels(
            [r.axes[baselines.AXIS] for r in ok if baselines.is_baseline(r)])],
    }


def span(values: Iterable[Any]) -> str:
    """Distinct values as text: one value; up to four listed (2,400 or 3,000); more numbers as their range."""
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if not distinct:
        return ""

    def text(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{v:g}" if isinstance(v, float) \
            else str(v)

    if len(distinct) > 4 and all(isinstance(v, (int, float)) for v in distinct):
        return f"{text(distinct[0])}--{text(distinct[-1])}"
    words = [text(v) for v in distinct]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def code_version(record: RunRecord) -> str:
    """The commit a run was trained at, short, marked +dirty when the tree had uncommitted changes."""
    git = record.provenance.git
    return (git.commit or "unknown")[:10] + ("+dirty" if git.dirty else "")


def failures(records: Sequence[RunRecord]) -> list[dict[str, str]]:
    """Why runs failed, once per distinct reason, with the cells it happened in."""
    reasons: dict[str, list[str]] = {}
    for record in records:
        if record.status == "failed":
            cell = ", ".join(f"{axis} {label_text(label)}" for axis, label in record.axes.items())
            cells = reasons.setdefault(record.error.message, [])
            if cell not in cells:
                cells.append(cell)
    return [{"reason": reason, "cells": "; ".join(cells)} for reason, cells in reasons.items()]


def failed_axes(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """The axis labels of each failed run: tables show 'failed' in a cell whose runs all failed."""
    return [dict(record.axes) for record in records if record.status == "failed"]
