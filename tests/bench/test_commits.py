"""A change's speed, measured against the commit before it (tests/bench/commits.py): the same quick slice run by
both commits' code side by side in one run, with the ratio printed.

`make bench` compares commits.DEFAULT_BASE (the commit before the first speed lever) with HEAD. The small test
runs the machinery on one smoke study with HEAD against itself: two runs of the same code on one machine must
write the same metrics, bit for bit."""

from __future__ import annotations

from tests.bench import commits


def test_the_quick_slice_at_the_base_commit_against_head(benchmark):
    base, head = commits.resolve(commits.DEFAULT_BASE), commits.resolve("HEAD")
    rows: list[dict] = []
    benchmark.pedantic(lambda: rows.extend(commits.compare(base, head)), rounds=1, iterations=1)
    print("\n" + commits.table(rows, base, head))
    assert [r["part"] for r in rows][-1] == "slice" and all(r["runs"] > 0 for r in rows)
    # the levers taken since the base are exact: every metric of the slice is the same under both commits
    assert all(r["same_metrics"] for r in rows), rows
    benchmark.extra_info.update({r["part"]: {k: r[k] for k in ("base_s", "head_s", "same_metrics")} for r in rows})


def test_two_runs_of_one_commit_write_the_same_metrics():
    head = commits.resolve("HEAD")
    rows = commits.compare(head, head, parts=(("calibration", {}),), profile="smoke")
    assert [r["part"] for r in rows] == ["calibration ", "slice"]
    assert rows[0]["runs"] == 4 and rows[-1]["runs"] == 4
    assert all(r["same_metrics"] for r in rows), rows
    assert "slice" in commits.table(rows, head, head).splitlines()[-1]
