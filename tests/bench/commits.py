"""One slice of the quick profile run by two commits' code side by side: the speed ratio of a change, measured.

Each commit's tree is exported with `git archive` into a scratch folder and imported from there (PYTHONPATH, and
the tree as working directory, so each commit runs its own study files). The slice, run by both:

    loss_epochs   the corrected protocol's five losses and the two baselines, seed 0
    one_shot      the 60-40 split's trained run and its two baselines, seed 0

Each part runs in a fresh process per commit (process start and dataset loading counted, as a reviewer sees
them), the two commits alternating part by part so that machine noise falls on both. It prints each part's
seconds, the ratio (base / head: above 1 means the head is faster) and whether the two wrote the same metrics.

    python -m tests.bench.commits [BASE [HEAD]]     BASE defaults to DEFAULT_BASE, HEAD to the working tree's HEAD
    make bench                                      runs it as tests/bench/test_commits.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The commit before the first speed lever (3f0bb67: few-shot episodes from one distance table).
DEFAULT_BASE = "4c37608"
SLICE = (("loss_epochs", {"protocol": "corrected"}), ("one_shot", {"split": "60-40"}))

# Runs in the exported tree: only the API both commits share (spec.load, Run.axes/seed/parent, train.execute).
RUNNER = """
import json, sys, time
from harness import spec, train
study, where, seed, profile = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runs = [r for r in spec.load(study, profile).runs
        if r.seed == seed and r.parent is None and all(r.axes.get(k, v) == v for k, v in where.items())]
metrics = {}
for run in runs:
    record = train.execute(run, progress=False)
    metrics[run.run_id] = record.metrics if hasattr(record, "metrics") else record["metrics"]
print(json.dumps({"runs": len(runs), "metrics": metrics}))
"""


def export(rev: str, into: Path) -> Path:
    """The commit's tree, unpacked into `into`/<rev>."""
    tree = into / rev
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def resolve(rev: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True, capture_output=True,
                          text=True).stdout.strip()


def run_part(tree: Path, study: str, where: dict, profile: str, seed: int = 0) -> tuple[float, dict]:
    """Seconds the part takes with this tree's code in a fresh process, and the metrics it wrote."""
    import os

    env = {**os.environ, "PYTHONPATH": str(tree), "HARNESS_WORKERS": "0"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, study, json.dumps(where), str(seed), profile], cwd=tree, env=env,
                          check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def compare(base: str, head: str, parts: tuple = SLICE, profile: str = "quick") -> list[dict]:
    """Each part of the slice under both commits, alternating; one row per part, then the total."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        trees = {rev: export(rev, Path(scratch)) for rev in dict.fromkeys((base, head))}
        for study, where in parts:
            (base_s, base_out), (head_s, head_out) = (run_part(trees[rev], study, where, profile) for rev in (base, head))
            rows.append({"part": f"{study} {' '.join(f'{k}={v}' for k, v in where.items())}",
                         "runs": head_out["runs"], "base_s": base_s, "head_s": head_s,
                         "same_metrics": base_out["metrics"] == head_out["metrics"]})
    rows.append({"part": "slice", "runs": sum(r["runs"] for r in rows), "base_s": sum(r["base_s"] for r in rows),
                 "head_s": sum(r["head_s"] for r in rows), "same_metrics": all(r["same_metrics"] for r in rows)})
    return rows


def table(rows: list[dict], base: str, head: str) -> str:
    lines = [f"{'part':<34}{'runs':>5}{base:>10}{head:>10}{'ratio':>8}  same metrics"]
    for r in rows:
        lines.append(f"{r['part']:<34}{r['runs']:>5}{r['base_s']:>9.1f}s{r['head_s']:>9.1f}s"
                     f"{r['base_s'] / r['head_s']:>7.2f}x  {'yes' if r['same_metrics'] else 'no'}")
    return "\n".join(lines)


if __name__ == "__main__":
    given = sys.argv[1:]
    base, head = resolve(given[0] if given else DEFAULT_BASE), resolve(given[1] if len(given) > 1 else "HEAD")
    print(table(compare(base, head), base, head))
