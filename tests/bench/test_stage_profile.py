"""Where a quick run's time goes (tests/bench/stages.py): one run of each study's quick profile, and one of
one_shot's baselines, with every stage timed; the table is printed (`make bench` shows it) and its stages must
account for each run's time without counting any of it twice."""

from __future__ import annotations

from harness import spec
from tests.bench import stages


def test_where_a_quick_run_spends_its_time(benchmark):
    rows: dict[str, dict[str, float]] = {}
    benchmark.pedantic(lambda: rows.update(stages.profile_studies(spec.list_studies())), rounds=1, iterations=1)
    print("\n" + stages.table(rows))
    for name, row in rows.items():
        assert abs(sum(row[s] for s in stages.STAGES) - row["total"]) < 1e-6, name
        # "other" is what no timer claimed: negative would mean a stage counted twice
        assert row["other"] > -0.02 * row["total"], (name, row["other"])
        assert row["forward"] + row["metrics"] > 0, name  # the timers saw the run
    benchmark.extra_info.update({f"{name}: {stage}": round(row[stage], 3) for name, row in rows.items()
                                 for stage in stages.STAGES})
