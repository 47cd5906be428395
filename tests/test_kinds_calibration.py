"""The calibration kind: an A/A check of the paired rule. Runs that differ only by seed, split at random into two
groups paired by position, are called different at about the rule's nominal 5 %; runs that do differ are not."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.kinds import calibration


def test_same_distribution_is_called_different_at_about_five_percent():
    rng = np.random.default_rng(3)
    values = rng.normal(0.3, 0.01, size=20).tolist()
    different, splits = calibration.false_positives(values, 5, 2000, seed=0)
    rate, low, high = calibration.rate_interval(different, splits)
    assert splits == 2000 and 0.02 < rate < 0.09 and low < rate < high


def test_the_draw_is_seeded_and_uses_disjoint_groups():
    values = list(np.linspace(0.1, 0.2, 20))
    assert calibration.false_positives(values, 5, 300, 1) == calibration.false_positives(values, 5, 300, 1)
    # Ten runs far apart from the other ten: a split that puts them in different groups is called different.
    split = [0.1] * 10 + [0.9] * 10
    split = [v + 0.001 * i for i, v in enumerate(split)]
    assert calibration.false_positives(split, 5, 300, 1)[0] > 0


def test_too_few_runs_is_one_clear_error():
    with pytest.raises(HarnessError, match="needs at least 10 runs, found 9"):
        calibration.false_positives([0.1] * 9, 5, 200, 0)


def test_the_exact_binomial_interval():
    from scipy import stats

    rate, low, high = calibration.rate_interval(50, 1000)
    ci = stats.binomtest(50, 1000).proportion_ci(0.95, method="exact")
    assert rate == 0.05 and (low, high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_the_ideal_reference_applies_the_same_rule_and_centres_on_five_percent():
    """ideal_rates decides |t| > t(0.975, n - 1) in one vectorised step: the paired interval's rule
    (aggregate.paired_difference excludes 0) on the same differences; over many normal samples it averages 5 %."""
    from scipy import stats

    from harness import aggregate

    rng = np.random.default_rng(0)
    critical = stats.t.ppf(0.975, 4)
    for _ in range(200):
        d = rng.normal(0.3, 1.0, size=5)
        t = d.mean() / (d.std(ddof=1) / np.sqrt(5))
        assert (abs(t) > critical) == (aggregate.paired_difference(dict(enumerate(d)), dict.fromkeys(range(5), 0.0)).sign != 0)
    rates = calibration.ideal_rates(20, 5, 500, samples=300, seed=1)
    assert 0.045 < float(np.mean(rates)) < 0.055 and min(rates) < 0.05 < max(rates)


def test_the_calibration_study_runs_and_renders_its_smoke_profile(tmp_path, run_cli):
    """Its smoke profile has one seed: the runs and the table render, and the A/A check says it needs more runs
    instead of printing a rate."""
    import shutil

    from tests.conftest import REPO

    results = tmp_path / "results"
    code, _, err = run_cli("run", "calibration", "--profile", "smoke", "--results", results, "--no-progress")
    assert code == 0 and "4 runs" in err and "0 failed" in err, err
    paper = tmp_path / "paper"
    shutil.copytree(REPO / "paper", paper, ignore=shutil.ignore_patterns("generated", "build"))
    code, _, err = run_cli("render", "--profile", "smoke", "--results", results, "--paper", paper, "--studies",
                           "calibration", "--no-pdf")
    assert code == 0, err
    written = (paper / "generated" / "calibration" / "calibration.tex").read_text()
    assert "needs at least 10 runs, found 1" in written
    assert (paper / "generated" / "calibration" / "table_map_at_r.tex").exists()
