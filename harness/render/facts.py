"""What produced a study's numbers, read from its run records (not from the YAML): the setup paragraph's facts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness import search
from harness.plan import distinct
from harness.render import baselines
from harness.render.axes import label_text
from harness.spec import Study
from harness.store import RunRecord


def setup_facts(records: Sequence[RunRecord], profile: str, description: str) -> dict[str, Any]:
    """Dataset, model, optimizer, seeds, code versions and devices of the finished runs (at least one); the model,
    optimizer and epochs are those of the trained runs (a baseline trains nothing), the baselines are named."""
    records = distinct(records)
    ok = [r for r in records if r.status == "ok"]
    # a declared search's trial runs train on folds at drawn settings: the chapter's search table shows them
    trained = [r for r in ok if not baselines.is_baseline(r) and "trial" not in (r.search or {})] or ok
    # Every fact is read over all the records it describes: a study whose runs differ (splits, sweeps of the
    # dimension or the batch) shows the range, not one record's value.
    return {
        "profile": profile,
        "description": description,
        **config_facts([r.config for r in trained]),
        "datasets": sorted({r.config["data"]["dataset"] for r in ok}),
        "train_size": span(r.data.train_size for r in trained if r.data),
        "test_size": span(r.data.test_size for r in trained if r.data),
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


def config_facts(configs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What resolved configs (at least one) declare about the data, model, loss, optimizer and schedule: the
    facts shared by the protocol as run (read from records) and as the full profile would run it (from the YAML)."""
    cfg = configs[0]
    return {
        "dataset": cfg["data"]["dataset"],
        "datasets": sorted({c["data"]["dataset"] for c in configs}),
        "per_class": span(c["data"].get("train_per_class") or "all" for c in configs),
        "model": span(c["model"]["name"] for c in configs),
        "embedding_dim": span(c["model"].get("embedding_dim") for c in configs if c["model"].get("embedding_dim")),
        "losses": sorted({c["loss"]["name"] for c in configs if c.get("loss")}),
        "optimizer": cfg["optimizer"],
        "optimizers": span(c["optimizer"]["name"] for c in configs),
        "learning_rate": span(c["optimizer"].get("lr") for c in configs if c["optimizer"].get("lr")),
        "batch_size": span(c["train"]["batch_size"] for c in configs),
        "epochs": span(c["train"]["epochs"] for c in configs),
        "eval_epochs": runs_of(sorted({e for c in configs for e in c["train"]["eval_epochs"]})),
        # the distance the evaluation ranks by: it changes every retrieval number, the raw input's included
        "distance": span(c.get("eval", {}).get("distance") or "euclidean" for c in configs),
    }


def planned_facts(study: Study) -> dict[str, Any]:
    """The protocol a profile runs, from its resolved configs alone (no records): for the full profile, which
    is described beside the profile that was rendered, with its cost estimate where the study declares one."""
    trained = [run for run in study.runs if baselines.AXIS not in run.axes] or study.runs
    return {
        "profile": study.profile,
        "description": study.description,
        **config_facts([run.config_dict() for run in trained]),
        "seeds": sorted({run.seed for run in study.runs}),
        "runs": search.planned(study),
        "baselines": [baselines.name(label) for label in baselines.ordered_labels(
            [run.axes[baselines.AXIS] for run in study.runs if baselines.AXIS in run.axes])],
        "estimate": study.spec.profiles[study.profile].estimate,
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


def runs_of(numbers: Sequence[int]) -> list[str]:
    """Sorted integers with every run of four or more consecutive ones written as a range: 1--40, 50."""
    out: list[str] = []
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            chunk = numbers[start:i]
            out += [f"{chunk[0]}--{chunk[-1]}"] if len(chunk) >= 4 else [str(n) for n in chunk]
            start = i
    return out


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
