"""Evaluation speed and memory: our one-call metrics against pytorch-metric-learning's AccuracyCalculator.

10,000 queries against 60,000 references, 128-d float32, 10 classes (so R, the same-label count that MAP@R
ranks through, is ~6,000 per query). Ours computes precision@1, Recall@{1,2,4,8,16,32}, MAP@R, R-precision
and kNN accuracy in one call; the oracle computes precision@1, MAP@R and R-precision with k="max_bin_count".
Both are timed in the same run, alternately; ours must be >= 3x faster, agree to 1e-6, and its peak memory
(measured in a fresh subprocess: resident high-water mark after the call minus before it) must stay <= 2 GB.
Run with `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from harness import evaluate

N_QUERY, N_REFERENCE, DIM, CLASSES = 10_000, 60_000, 128, 10
ALL = ["precision_at_1", "recall_at_k", "map_at_r", "r_precision", "knn_accuracy"]


def embeddings(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLASSES, DIM)).astype(np.float32)
    ref_y = rng.integers(0, CLASSES, N_REFERENCE)
    query_y = rng.integers(0, CLASSES, N_QUERY)
    ref = (centres[ref_y] + 2 * rng.standard_normal((N_REFERENCE, DIM))).astype(np.float32)
    query = (centres[query_y] + 2 * rng.standard_normal((N_QUERY, DIM))).astype(np.float32)
    return query, query_y, ref, ref_y


def oracle(query, query_y, ref, ref_y) -> dict[str, float]:
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                              k="max_bin_count", device=torch.device("cpu"))
    return calc.get_accuracy(torch.tensor(query), torch.tensor(query_y), torch.tensor(ref), torch.tensor(ref_y),
                             ref_includes_query=False)


# VmHWM (the process's resident high-water mark) rather than ru_maxrss, which Linux carries across exec from
# the parent (here a pytest process that just ran the oracle).
MEMORY_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from tests.bench.test_evaluate_speed import embeddings, ALL
from harness import evaluate

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

data = embeddings()
before = hwm_mb()
evaluate.evaluate(*data, metrics=ALL)
print(json.dumps({{"before_mb": before, "peak_mb": hwm_mb()}}))
"""


def test_one_call_is_3x_faster_than_accuracy_calculator(benchmark):
    data = embeddings()
    ours_s, theirs_s = [], []
    for _ in range(2):
        tick = time.perf_counter()
        theirs = oracle(*data)
        theirs_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        ours = evaluate.evaluate(*data, metrics=ALL)
        ours_s.append(time.perf_counter() - tick)
    assert ours["precision_at_1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-6)
    ratio = min(theirs_s) / min(ours_s)
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE.format(root=root)], capture_output=True, text=True,
                           check=True)
    memory = json.loads(probe.stdout.strip().splitlines()[-1])
    call_mb = memory["peak_mb"] - memory["before_mb"]
    benchmark.extra_info.update({"ours_s": min(ours_s), "accuracy_calculator_s": min(theirs_s), "ratio": ratio,
                                 "call_peak_mb": call_mb, **memory})
    benchmark.pedantic(lambda: evaluate.evaluate(*data, metrics=ALL), rounds=1, iterations=1)
    print(f"\nours {min(ours_s):.2f} s, AccuracyCalculator {min(theirs_s):.2f} s, ratio {ratio:.2f} (>= 3 required); "
          f"peak memory of the call {call_mb:.0f} MB (process peak {memory['peak_mb']:.0f} MB)")
    assert ratio >= 3.0
    assert call_mb <= 2048
