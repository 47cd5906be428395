"""Few-shot episodes from one distance table against episodes that compute their own distances, side by side in
one run: one_shot's quick task on raw pixels (800 items of 40 classes, 784-d, 500 20-way 1-shot episodes of 15
queries a class). The table path must give the same numbers bit for bit and be at least twice as fast (measured
4x on a 2-core CPU; the 50 one_shot quick baselines went from 315 s to 80 s of recorded wall time, every metric
equal). Run with `make bench`."""

from __future__ import annotations

import statistics
import time

import numpy as np

from harness.evaluate import pairs

ROUNDS = 3
REQUIRED_RATIO = 2.0


def task() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((800, 784)), np.repeat(np.arange(160, 200), 20)


def episodes(x: np.ndarray, y: np.ndarray) -> dict:
    return pairs.n_way_k_shot(x, y, n_way=20, k_shot=1, n_queries=15, n_episodes=500, distance="cosine", seed=0)


def test_episodes_from_a_distance_table_are_faster_and_equal(benchmark, monkeypatch):
    x, y = task()
    table_s, own_s, results = [], [], []
    for _ in range(ROUNDS):  # alternate, so that machine noise hits both alike
        start = time.perf_counter()
        results.append(episodes(x, y))
        table_s.append(time.perf_counter() - start)
        with monkeypatch.context() as patched:
            patched.setattr(pairs, "TABLE_ITEMS", 0)
            start = time.perf_counter()
            results.append(episodes(x, y))
            own_s.append(time.perf_counter() - start)
    ratio = statistics.median(own_s) / statistics.median(table_s)
    print(f"\nepisodes: own distances {statistics.median(own_s):.2f} s, from the table "
          f"{statistics.median(table_s):.2f} s: {ratio:.1f}x")
    assert all(r == results[0] for r in results)
    assert ratio >= REQUIRED_RATIO
    benchmark.extra_info.update({"own_s": statistics.median(own_s), "table_s": statistics.median(table_s),
                                 "ratio": ratio})
    benchmark.pedantic(lambda: episodes(x, y), rounds=1, iterations=1)
