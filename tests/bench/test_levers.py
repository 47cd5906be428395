"""Each speed lever of issue 28 on every study's quick run, here and as an AVX2 host runs it (tests/bench/levers.py).

`make bench` prints the whole table. The small test runs the same machinery on two steps of one study, so that a
change to the trainer or the overrides that breaks the bench fails the suite, not a later `make bench`."""

from __future__ import annotations

import math

from harness import spec
from tests.bench import levers


def test_each_lever_on_each_study_here_and_on_avx2(benchmark):
    studies = spec.list_studies()
    rows: dict = {}
    benchmark.pedantic(lambda: rows.update(here=levers.measure_all(studies),
                                           avx2=levers.measure_avx2(studies, 30, 2048)), rounds=1, iterations=1)
    print("\n" + levers.table(rows["here"], rows["avx2"]))
    for where in ("here", "avx2"):  # every study and lever measured (fused Adam only where a study uses Adam)
        assert set(rows[where]) == set(studies)
        for study, timings in rows[where].items():
            assert set(timings) == set(levers.LEVERS), (where, study)
            for lever, t in timings.items():
                assert (t["step_ms"] > 0 and t["embed_s"] > 0) or lever == "fused Adam", (where, study, lever)
    benchmark.extra_info.update({f"{where} {study} {lever}": timings for where in ("here", "avx2")
                                 for study, row in rows[where].items() for lever, timings in row.items()})


def test_the_lever_table_is_measured_in_one_run_for_both_instruction_sets():
    here = levers.measure_all(["calibration"], steps=2, items=32)
    avx2 = levers.measure_avx2(["calibration"], 2, 32)
    for rows in (here, avx2):
        assert set(rows["calibration"]) == set(levers.LEVERS)
        for lever, timings in rows["calibration"].items():
            assert timings["step_ms"] > 0 and timings["embed_s"] > 0, lever  # calibration trains with Adam
    ratio = levers.ratios(here)["calibration"]["bf16"]
    assert math.isclose(ratio["step"], here["calibration"]["as declared"]["step_ms"]
                        / here["calibration"]["bf16"]["step_ms"])
    text = levers.table(here, avx2)
    assert text.splitlines()[2].startswith("calibration") and "channels_last (here | AVX2)" in text
