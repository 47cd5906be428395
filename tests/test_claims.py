"""Claims as data: the difference a claim computes (paired by seed, per label, against a baseline), its verdict,
the numbers its sentence shows; `harness check` on the committed records, and what makes it fail: a verdict the
records no longer give, an edited record, a missing record, a result number typed into the prose."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness import claims, store
from harness.errors import ConfigError, HarnessError
from harness.prose import hand_typed
from harness.report import LABEL_PLACEHOLDER, ClaimSpec
from harness.kinds.claim import FIELDS
from tests.conftest import REPO, frame


def claim(**fields) -> ClaimSpec:
    return ClaimSpec(**{"name": "c", "kind": "hypothesis", "statement": "s", "sentence": "{mean} [{low}, {high}]",
                        "expect": "higher", "a": {"where": {"loss": "a"}, "metric": "acc"},
                        "b": {"where": {"baseline": "raw_input"}, "metric": "acc"}, **fields})


def rows(values: dict, metric: str = "acc", epoch: int = 5) -> list[tuple]:
    """axes (as a tuple of pairs) -> value per seed."""
    return [(dict(axes), f"{axes}/{seed}", seed, epoch, metric, v)
            for axes, per_seed in values.items() for seed, v in enumerate(per_seed)]


def interval(d: list[float]) -> tuple[float, float, float]:
    d = np.array(d)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def test_a_difference_paired_by_seed_against_a_baseline_and_its_sentence_numbers():
    data = frame(rows({(("loss", "a"),): [0.80, 0.85, 0.83], (("baseline", "raw_input"),): [0.70, 0.72, 0.75],
                       (("loss", "b"),): [0.10, 0.10, 0.10]}))
    result = claims.compute(claim(), data, "quick")
    mean, low, high = interval([0.10, 0.13, 0.08])
    assert result.verdict == "supported" and len(result.parts) == 1
    assert result.numbers()["mean"] == f"{mean * 100:+.2f}" and result.numbers()["low"] == f"{low * 100:+.2f}"
    assert result.numbers()["high"] == f"{high * 100:+.2f}" and result.numbers()["a"] == "82.67"
    assert result.numbers()["n"] == "3"
    assert {r.split("/")[0] for r in result.runs} == {"(('loss', 'a'),)", "(('baseline', 'raw_input'),)"}


@pytest.mark.parametrize("a_values,expect,verdict", [
    ([0.80, 0.85, 0.83], "higher", "supported"),
    ([0.60, 0.62, 0.61], "higher", "contradicted"),
    ([0.80, 0.60, 0.75], "higher", "inconclusive"),  # the interval contains 0
    ([0.60, 0.62, 0.61], "lower", "supported"),
    ([0.703, 0.718, 0.752], "same", "supported"),  # within 1 point of the baseline, by two one-sided tests
    ([0.71, 0.70, 0.76], "same", "inconclusive"),  # the interval holds 0 but is wider than the margin
    ([0.80, 0.85, 0.83], "same", "contradicted"),
])
def test_the_verdict_rule(a_values, expect, verdict):
    data = frame(rows({(("loss", "a"),): a_values, (("baseline", "raw_input"),): [0.70, 0.72, 0.75]}))
    margin = {"margin": 1.0} if expect == "same" else {}
    assert claims.compute(claim(expect=expect, **margin), data, "quick").verdict == verdict


def test_the_verdict_says_what_was_claimed_and_on_what_evidence():
    data = frame(rows({(("loss", "a"),): [0.80, 0.85, 0.83], (("baseline", "raw_input"),): [0.70, 0.72, 0.75]}))
    original = claim(kind="original", quote={"text": "t", "source": "seed 000, abstract"})
    assert claims.compute(original, data, "quick").verdict == "consistent"  # a stand-in
    assert claims.compute(original, data, "quick", on_original=True).verdict == "reproduced"
    against = claim(kind="original", quote={"text": "t", "source": "s"}, expect="lower")
    assert claims.compute(against, data, "quick").verdict == "inconsistent"
    assert claims.compute(against, data, "quick", on_original=True).verdict == "contradicted"
    question = claim(kind="question", expect=None)
    result = claims.compute(question, data, "quick")
    assert result.verdict == "answered" and result.tests == () and result.numbers()["mean"] == "+10.33"
    with pytest.raises(ConfigError, match="quotes it"):
        claim(kind="original")
    with pytest.raises(ConfigError, match="predicts nothing"):
        claim(kind="question")
    with pytest.raises(ConfigError, match="needs a `margin`"):
        claim(expect="same")
    with pytest.raises(ConfigError, match="is not a verdict of a claim of kind hypothesis"):
        claim(verdict={"quick": "reproduced"})


def test_the_original_reported_difference_is_set_against_the_interval():
    data = frame(rows({(("loss", "a"),): [0.80, 0.85, 0.83], (("baseline", "raw_input"),): [0.70, 0.72, 0.75]}))
    mean, low, high = interval([0.10, 0.13, 0.08])
    inside = claims.compute(claim(reported={"effect": mean * 100, "source": "s"}), data, "quick", on_original=True)
    outside = claims.compute(claim(reported={"effect": (high + 0.01) * 100, "source": "s"}), data, "quick",
                             on_original=True)
    assert inside.inside is True and outside.inside is False
    assert claims.compute(claim(), data, "quick", on_original=True).inside is None  # nothing reported
    # On a stand-in the original's level is not ours: its difference is not set against our interval.
    assert claims.compute(claim(reported={"effect": mean * 100, "source": "s"}), data, "quick").inside is None


def test_an_effect_that_cannot_act_is_not_testable_with_its_reason():
    """The best epoch by the test metric is the last one in every run: choosing it changes nothing."""
    data = frame(rows({(("loss", "a"),): [0.5, 0.6, 0.55]}, epoch=1) + rows({(("loss", "a"),): [0.7, 0.8, 0.75]}))
    spec = claim(a={"where": {"loss": "a"}, "metric": "acc", "epoch": "best:acc"},
                 b={"where": {"loss": "a"}, "metric": "acc"})
    result = claims.compute(spec, data, "quick")
    assert result.verdict == "not testable here" and result.tests == ()
    assert "epoch of the best acc is its last evaluated epoch" in result.untestable


def test_a_profiles_claims_are_one_family_adjusted_by_holm():
    """Alone, a claim at p between 0.025 and 0.05 holds; in a family of two such claims neither does (Holm
    doubles the smaller p, and stops there), and a claim the records cannot compute counts as a test with p = 1."""
    data = frame(rows({(("loss", "a"),): [0.80, 0.83, 0.85], (("loss", "b"),): [0.73, 0.75, 0.80],
                       (("baseline", "raw_input"),): [0.70, 0.72, 0.75]}))
    strong = claims.compute(claim(), data, "quick")
    weak = claims.compute(claim(a={"where": {"loss": "b"}, "metric": "acc"}), data, "quick")
    assert 2 * strong.tests[0].p < 0.025 < weak.tests[0].p < 0.05
    assert (strong.verdict, weak.verdict) == ("supported", "supported")
    adjusted = claims.family([weak, weak])
    assert [r.verdict for r in adjusted] == ["inconclusive", "inconclusive"]
    assert [r.verdict_at(adjusted=False) for r in adjusted] == ["supported", "supported"]
    assert adjusted[0].tests[0].adjusted == pytest.approx(2 * weak.tests[0].p) and adjusted[0].family_size == 2
    assert [r.verdict for r in claims.family([strong, weak])] == ["supported", "supported"]  # step-down
    with_unknown = claims.family([weak, HarnessError("no records")])
    assert with_unknown[0].family_size == 2 and with_unknown[0].verdict == "inconclusive"


def test_per_label_every_label_must_agree_and_a_baseline_over_the_axis_pairs_by_label():
    data = frame(rows({(("split", "x"),): [0.80, 0.85, 0.83], (("split", "y"),): [0.50, 0.52, 0.51],
                       (("baseline", "raw_input"), ("split", "x")): [0.70, 0.72, 0.75],
                       (("baseline", "raw_input"), ("split", "y")): [0.40, 0.41, 0.42]}))
    spec = claim(a={"metric": "acc"}, per="split", sentence="{min} to {max}, lowest end {lowest}")
    result = claims.compute(spec, data, "quick", {"split": ["x", "y"]})
    assert [p.label for p in result.parts] == ["x", "y"] and result.verdict == "supported"
    assert result.numbers()["min"] == f"{interval([0.10, 0.11, 0.09])[0] * 100:+.2f}"  # y against y's baseline
    data = frame(rows({(("split", "x"),): [0.80, 0.85, 0.83], (("split", "y"),): [0.40, 0.30, 0.45],
                       (("baseline", "raw_input"),): [0.70, 0.72, 0.75]}))  # one baseline for every label
    assert claims.compute(spec, data, "quick", {"split": ["x", "y"]}).verdict == "inconclusive"


def test_a_spread_claim_compares_the_range_over_labels_seed_by_seed():
    tuned = {"x": [0.60, 0.62, 0.61], "y": [0.59, 0.60, 0.62], "z": [0.58, 0.61, 0.60]}
    default = {"x": [0.60, 0.62, 0.61], "y": [0.50, 0.49, 0.52], "z": [0.40, 0.43, 0.41]}
    data = frame(rows({**{(("loss", k), ("setting", "tuned")): v for k, v in tuned.items()},
                       **{(("loss", k), ("setting", "default")): v for k, v in default.items()}}))
    spec = claim(a={"where": {"setting": "tuned"}, "metric": "acc"}, b={"where": {"setting": "default"},
                 "metric": "acc"}, per="loss", statistic="spread", expect="lower", sentence="{a} against {b}: {mean}")
    result = claims.compute(spec, data, "quick", {"loss": ["x", "y", "z"], "setting": ["default", "tuned"]})
    spread_a = [max(v[s] for v in tuned.values()) - min(v[s] for v in tuned.values()) for s in range(3)]
    spread_b = [max(v[s] for v in default.values()) - min(v[s] for v in default.values()) for s in range(3)]
    assert len(result.parts) == 1 and result.parts[0].a == dict(enumerate(spread_a))
    mean, low, high = interval([x - y for x, y in zip(spread_a, spread_b)])
    assert result.numbers()["mean"] == f"{mean * 100:+.2f}" and result.numbers()["low"] == f"{low * 100:+.2f}"
    assert result.verdict == "supported" and len(result.tests) == 1
    with pytest.raises(ConfigError, match="statistic spread is the spread over the labels of an axis: give `per`"):
        claim(statistic="spread")


def test_epochs_selection_and_a_missing_cell():
    data = frame(rows({(("loss", "a"), ("lr", 1)): [0.5, 0.5]}, epoch=1) + rows({(("loss", "a"), ("lr", 1)): [0.9, 0.9]})
                 + rows({(("loss", "a"), ("lr", 2)): [0.6, 0.6]}) + rows({(("loss", "a"), ("lr", 1)): [0.1, 0.1]},
                                                                        metric="val")
                 + rows({(("loss", "a"), ("lr", 2)): [0.2, 0.2]}, metric="val"))
    spec = claim(a={"where": {"loss": "a"}, "metric": "acc", "select": {"axes": ["lr"], "by": "val"}},
                 b={"where": {"loss": "a", "lr": 1}, "metric": "acc", "epoch": 1})
    result = claims.compute(spec, data, "quick")
    assert result.numbers()["a"] == "60.00" and result.numbers()["b"] == "50.00"  # lr 2 chosen on "val"; epoch 1
    with pytest.raises(HarnessError, match="claim 'c': no record for cell b"):
        claims.compute(claim(), data, "quick")


def test_claims_are_checked_at_load():
    with pytest.raises(ConfigError, match="placeholder {avg}"):
        claim(sentence="{avg}")
    with pytest.raises(ConfigError, match="types a result number"):
        claim(sentence="ArcFace gains 1.2 points")
    with pytest.raises(ConfigError, match="needs a `reason`"):
        claim(a=None, b=None)


def test_hand_typed_numbers_are_percentages_not_settings_or_confidence_levels():
    assert hand_typed("reached 81.5\\,\\% after") == ["81.5\\,\\%"]
    assert hand_typed("a gain of 3 points") == ["3 points"]
    assert hand_typed("a 95\\,\\% $t$-interval, margin 0.25, lr 1e-3, 20 epochs, 95\\,\\%\ninterval") == []
    assert hand_typed("\\claimval{s}{c}{mean} points") == []


def test_a_record_knows_whether_it_was_edited(tmp_path):
    source = next((REPO / "results" / "arcface" / "quick").glob("*.json"))
    record = store.read(source)
    assert record.intact()
    raw = json.loads(source.read_text())
    raw["metrics"][-1]["classification_accuracy"] += 0.001
    assert not store.validate(raw).intact()


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(REPO / "results", results)
    return results


def test_check_passes_on_the_committed_records(run_cli):
    code, out, err = run_cli("check")
    assert code == 0, err
    assert "claims give their declared verdicts on the records of profile quick" in out
    assert "Holm-adjusted" in out and "every record is intact" in out


def test_editing_a_metric_of_a_committed_record_fails_the_check_naming_the_claim(committed, run_cli):
    study = "arcface"
    path = next(p for p in (committed / study / "quick").glob("*.json")
                if store.read(p).axes == {"head": "arcface", "m": 0.4, "s": 2} and store.read(p).seed == 0)
    raw = json.loads(path.read_text())
    raw["metrics"][-1]["classification_accuracy"] -= 0.0001  # a small edit: no verdict changes
    path.write_text(json.dumps(raw))
    code, _, err = run_cli("check", "--studies", study, "--results", committed)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("check: arcface:")]
    # Every claim that reads the record is named (this cell is the original's setting of two claims).
    assert len(lines) == 1 and "claims 'arcface_beats_softmax_original_settings, tuning_m_s_helps'" in lines[0]
    assert path.stem in lines[0] and "edited after it was written" in lines[0]


def test_a_verdict_the_records_no_longer_give_fails_the_check(committed, run_cli):
    # Rerecorded (digest and all) with ArcFace far ahead at the original's settings: a sealed record that
    # changes the verdict, as a real rerun could.
    for path in (committed / "arcface" / "quick").glob("*.json"):
        record = store.read(path)
        if record.axes == {"head": "arcface", "m": 0.4, "s": 2}:
            metrics = [{**m, "classification_accuracy": 0.99} for m in record.metrics]
            store.write(committed, record.model_copy(update={"metrics": metrics}))
    code, _, err = run_cli("check", "--studies", "arcface", "--results", committed)
    assert code == 1
    assert ("claim 'arcface_beats_softmax_original_settings': the records give 'consistent', the study file "
            "declares 'inconclusive'") in err


def test_a_missing_record_and_typed_prose_fail_the_check(committed, run_cli, tmp_path):
    for path in (committed / "nk_sampling" / "quick").glob("*.json"):
        if store.read(path).axes.get("sampler") == "random":
            path.unlink()
    paper = tmp_path / "paper"
    shutil.copytree(REPO / "paper", paper, ignore=shutil.ignore_patterns("generated", "build"))
    chapter = paper / "chapters" / "nk_sampling.tex"
    chapter.write_text(chapter.read_text() + "\nThe gain was 4.9\\,\\% of MAP@R.\nIt used eval.options.n\\_way.\n")
    code, _, err = run_cli("check", "--studies", "nk_sampling", "--results", committed, "--paper", paper)
    assert code == 1
    assert "claim 'n_x_k_batches_help': run " in err and "is missing (and 9 more)" in err  # 2 losses x 5 seeds
    assert f"{chapter}:" in err and "'4.9\\\\,\\\\%'" in err
    assert "'eval.options.n\\_way' is a key, not a word" in err


def corrected_nca(folder: Path) -> list[Path]:
    """The records of loss_epochs's corrected NCA runs, by seed (their files name them by run_id)."""
    from harness import spec

    runs = [r for r in spec.load("loss_epochs", "quick", components=False).runs
            if r.axes == {"loss": "nca", "protocol": "corrected"}]
    return [folder / f"{r.run_id}.json" for r in sorted(runs, key=lambda r: r.seed)]


def test_one_seed_missing_unreadable_or_not_finite_fails_the_check_naming_the_claim_and_the_run(committed, run_cli):
    """A claim computed from the seeds that remain would hold on less evidence than the study declares."""
    folder = committed / "loss_epochs" / "quick"
    nca = corrected_nca(folder)
    assert len(nca) == 3
    nca[0].unlink()  # seed 0 gone
    nca[1].write_text("{not json")  # seed 1 unreadable
    raw = json.loads(nca[2].read_text())  # seed 2: a NaN (JSON's NaN token), which the record schema refuses
    raw["metrics"][-1]["knn_accuracy"] = float("nan")
    nca[2].write_text(json.dumps(raw))
    code, _, err = run_cli("check", "--studies", "loss_epochs", "--results", committed)
    assert code == 1
    line = next(line for line in err.splitlines() if "claim 'nca_declines_corrected'" in line)
    assert f"run {nca[0].stem} (seed 0) is missing (and 2 more)" in line and "harness run loss_epochs" in line
    every = next(line for line in err.splitlines() if "claim 'every_loss_learns'" in line)
    assert "(and 2 more)" in every


def test_which_runs_a_claim_misses_are_each_named(committed):
    from harness import spec

    study = spec.load("loss_epochs", "quick", components=False)
    claim = next(c for c in study.spec.report.claims if c.name == "nca_declines_corrected")
    folder = committed / "loss_epochs" / "quick"
    nca = corrected_nca(folder)
    nca[0].unlink()
    nca[1].write_text("{not json")
    raw = json.loads(nca[2].read_text())
    raw["metrics"][-1]["knn_accuracy"] = float("nan")
    nca[2].write_text(json.dumps(raw))
    found = claims.unread_runs(claim, study, store.scan(committed, "loss_epochs", "quick"))
    assert found[0] == f"run {nca[0].stem} (seed 0) is missing"
    assert found[1].startswith(f"run {nca[1].stem} (seed 1) is unreadable (")
    assert found[2].startswith(f"run {nca[2].stem} (seed 2) is unreadable (") and "finite" in found[2]


# -- every claim of every profile, on records made up from that profile's expanded matrix ----------------------------

def claim_metrics(report) -> set[str]:
    """Every metric a study's claims read: their cells' metrics, what they select by, what an epoch rule reads."""
    found = set()
    for c in report.claims:
        for cell in (c.a, c.b):
            if cell is None:
                continue
            found.add(cell.metric)
            if cell.select is not None:
                found.add(cell.select.by)
            if isinstance(cell.epoch, str) and cell.epoch.startswith("best:"):
                found.add(cell.epoch.removeprefix("best:"))
    return found


def made_up_frame(study) -> pd.DataFrame:
    """One row per run of the profile's matrix, evaluated epoch and claimed metric, all at 0.5: the records the
    profile would write, as far as its claims read them."""
    from harness import search

    metrics = sorted(claim_metrics(study.spec.report))
    runs = list(study.runs)
    if study.search is not None:  # the chosen runs a search adds once its trials are recorded (say, its last trial)
        for method, proposals in study.search.proposals.items():
            runs += study.search.chosen_runs(search.Choice(method, len(proposals), 0, 0, len(proposals) - 1,
                                                           dict(proposals[-1]), 0.5))
    return pd.DataFrame([{**run.axes, "run_id": run.run_id, "seed": run.seed, "epoch": epoch, "metric": metric,
                          "value": 0.5}
                         for run in runs for epoch in (run.config.train.eval_epochs or [0])
                         for metric in metrics])


# Per-seed offsets: a clear effect (every seed moves by about 0.1) and none (they cancel: the interval holds 0).
EFFECT = (0.101, 0.099, 0.102, 0.098, 0.1)
NO_EFFECT = (0.01, -0.01, 0.02, -0.02, 0.0)


def with_offsets(data, rows, offsets):
    data = data.copy()
    data.loc[rows, "value"] += data.loc[rows, "seed"].map(lambda s: offsets[s % len(offsets)])
    return data


# Per-seed offsets: a clear effect (every seed moves by about 0.1), none (they cancel: the interval holds 0 but
# is wider than a one-point margin) and a negligible one (well inside a one-point margin).
SMALL = (0.0005, -0.0005, 0.001, -0.001, 0.0)


@pytest.mark.parametrize("profile", ["full", "quick", "smoke"])
def test_every_claim_of_every_profile_computes_on_its_matrix_and_its_verdict_follows_the_data(profile):
    from harness import spec
    from harness.report import where_for, words

    checked, wrong, skipped = 0, [], []
    for name in spec.list_studies():
        study = spec.load(name, profile, components=False)
        base = made_up_frame(study)
        several = len({r.seed for r in study.runs}) > 1
        for c in study.spec.report.claims:
            if c.a is None:
                continue
            where = f"{name}/{profile}: {c.name}"
            absent = {axis for cell in (c.a, c.b) for axis in where_for(cell, profile, study.axes)
                      if axis not in study.axes and axis != "baseline"}
            if absent:  # an axis this profile does not vary (cub_cars's smoke has no dim): render says so
                skipped.append(where)
                continue
            a = claims.cell_frame(base, c.a, profile, study.axes)
            b = claims.cell_frame(base, c.b, profile, study.axes)
            if a.empty or b.empty:
                wrong.append(f"{where}: cell {'a' if a.empty else 'b'} names no run of this profile's matrix")
                continue
            assert not set(a.index) & set(b.index), f"{where}: its two cells read the same rows"
            if c.statistic == "spread":  # shifting a whole cell leaves a spread as it was: its own test above
                checked += 1
                continue
            original = claims.on_original(study, c)
            higher = with_offsets(base, a[a["metric"] == c.a.metric].index, EFFECT)  # a above b on every seed
            lower = with_offsets(base, b[b["metric"] == c.b.metric].index, EFFECT)  # b above a
            neither = with_offsets(base, a[a["metric"] == c.a.metric].index,
                                   SMALL if c.expect in ("same", "not higher") else NO_EFFECT)
            verdicts = [claims.compute(c, data, profile, study.axes, original).verdict
                        for data in (higher, lower, neither)]
            checked += 1
            # Its sentence takes every number it names from the records or the resolved configs.
            from harness.report import FIELDS

            shown = {**claims.compute(c, higher, profile, study.axes).numbers(), **claims.config_values(c, study)}
            unfilled = [f for f in FIELDS.findall(c.sentence) if shown.get(f, "--") == "--"]
            if unfilled:
                wrong.append(f"{where}: sentence placeholders with nothing to show: {unfilled}")
            holds, undecided, fails = words(c.kind, original)
            if c.kind == "question":
                expected = ["answered"] * 3
            elif not several:  # one seed has no interval: nothing is decided, but every cell was found
                expected = [undecided] * 3
            else:
                expected = {"higher": [holds, fails, undecided], "lower": [fails, holds, undecided],
                            "same": [fails, fails, holds], "not higher": [fails, holds, holds]}[c.expect]
            # The best epoch of some runs is never below their last: raising the last epoch makes it the best,
            # and the two cells then read the same value in every seed.
            if c.a.epoch == f"best:{c.a.metric}" and set(a["run_id"]) == set(b["run_id"]) and several:
                expected[1] = "not testable here"
                # Noise alone: the best epoch is never below the last, so the difference is >= 0 in every seed
                # and may be shown above 0 (the inflation the claim is about) or not, depending on the seeds.
                if verdicts[2] in (holds, undecided):
                    expected[2] = verdicts[2]
            if verdicts != expected:
                wrong.append(f"{where}: {verdicts}, expected {expected}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 13 and (profile == "smoke" or not skipped), skipped  # full and quick compute every claim


@pytest.mark.parametrize("profile", ["full", "quick", "smoke"])
def test_the_budget_claims_read_each_profiles_shortest_and_longest_budget(profile):
    """The full profile's budgets are 1 ... 50, quick's 10 ... 50 (scaled), smoke's 1, 2: a claim about the shortest
    budget names it by its place, and its sentence prints the label it read."""
    from harness import spec

    study = spec.load("loss_epochs", profile, components=False)
    budgets = study.axes["budget"]
    found = {c.name: c for c in study.spec.report.claims}
    data = made_up_frame(study)
    declines = claims.compute(found["nca_declines_original_protocol"], data, profile, study.axes)
    assert (declines.labels["a_budget"], declines.labels["b_budget"]) == (str(budgets[-1]), str(budgets[0]))
    carried = found["carried_training_flatters_late_losses"]
    assert claims.compute(carried, data, profile, study.axes).labels["a_budget"] == str(budgets[0])
    # "for as many epochs": the corrected run is read at the epoch count the shortest budget trains.
    shortest = next(r for r in study.runs if r.axes.get("budget") == budgets[0])
    assert carried.b.epoch == shortest.config.train.epochs


def test_a_cell_placed_by_order_and_a_label_placeholder_are_checked_at_load(experiments):
    import yaml

    from harness import spec

    path = experiments / "loss_epochs.yaml"
    doc = yaml.safe_load(path.read_text())
    claim = next(c for c in doc["report"]["claims"] if c["name"] == "nca_declines_original_protocol")
    claim["a"]["where"]["budget"] = {"order": "middle"}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"where.budget: \{'order': 'middle'\}: a label, a list of labels, null"):
        spec.load("loss_epochs", "quick", experiments, components=False)
    claim["a"]["where"]["budget"] = {"order": "last"}
    claim["sentence"] = "budget {a_budgett} by {mean}"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"sentence \{a_budgett\}: unknown axis 'budgett'"):
        spec.load("loss_epochs", "quick", experiments, components=False)


def test_a_control_that_should_learn_nothing_is_not_higher_within_its_margin():
    """expect "not higher": holds when a one-sided test shows a below b + margin; fails when a is shown higher."""
    base = [0.70, 0.72, 0.75, 0.71, 0.73]
    spec = claim(expect="not higher", margin=1.0)
    for a_values, verdict in (([0.696, 0.712, 0.748, 0.705, 0.722], "supported"),  # a little below b
                              ([0.60, 0.61, 0.66, 0.62, 0.60], "supported"),  # far below: also not higher
                              ([0.80, 0.83, 0.85, 0.80, 0.82], "contradicted"),
                              ([0.72, 0.70, 0.78, 0.71, 0.75], "inconclusive")):
        data = frame(rows({(("loss", "a"),): a_values, (("baseline", "raw_input"),): base}))
        assert claims.compute(spec, data, "quick").verdict == verdict, a_values
    with pytest.raises(ConfigError, match="expect not higher needs a `margin`"):
        claim(expect="not higher")


def test_a_cell_with_several_runs_per_seed_is_refused_naming_the_axis():
    """A seed's value must be one run's: averaging two datasets (or distances) into one number per seed would
    test a mixture nobody claimed."""
    data = frame(rows({(("loss", "a"), ("dataset", "x")): [0.80, 0.85, 0.83],
                       (("loss", "a"), ("dataset", "y")): [0.60, 0.65, 0.63],
                       (("baseline", "raw_input"),): [0.70, 0.72, 0.75]}))
    with pytest.raises(HarnessError, match="cell a holds several runs per seed \\(they differ on dataset\\)"):
        claims.compute(claim(), data, "quick")
    spec = claim(a={"where": {"loss": "a", "dataset": "x"}, "metric": "acc"})
    assert claims.compute(spec, data, "quick").verdict == "supported"


def test_a_study_whose_question_nothing_answers_fails_the_check(experiments, run_cli, monkeypatch):
    """report.answered_by names the tables, figures or claims that answer the study's question: a name that is
    no item is refused at load, and a study that lists none fails `harness check` in one line."""
    import yaml

    from harness import spec

    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    path = experiments / "nk_sampling.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["report"]["answered_by"] = ["map_at_r", "n_x_k_batches_hlep"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match="report.answered_by: no table, figure or claim 'n_x_k_batches_hlep'"):
        spec.load("nk_sampling", "quick", experiments, components=False)
    doc["report"]["answered_by"] = []
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, _, err = run_cli("check", "--studies", "nk_sampling", "--results", REPO / "results")
    assert code == 1
    lines = [line for line in err.splitlines() if "answered by nothing" in line]
    assert len(lines) == 1 and lines[0].startswith("check: nk_sampling: its question (Do batches built from N")


# -- sentences that cannot get a sign wrong: every declared claim rendered with synthetic values of each sign

CASES = {"positive": [0.020, 0.022, 0.021, 0.023, 0.019], "negative": [-0.020, -0.022, -0.021, -0.023, -0.019],
         "inconclusive": [0.010, -0.012, 0.003, -0.004, 0.002]}
# A word that says which way, then a number of the other sign within a few words: "above by -2", "drops +3".
UP = r"(?:above|higher|more|better|beats?|gains?|exceeds?|improves?|increases?)"
DOWN = r"(?:below|lower|less|worse|drops?|hurts?|decreases?)"
CONTRADICTION = rf"\b(?:{UP}\b[^.;:()]{{0,25}}?-\d|{DOWN}\b[^.;:()]{{0,25}}?\+\d)"


def synthetic(spec: ClaimSpec, differences: list[list[float]]) -> claims.Result:
    """The claim computed on made-up per-seed values: one part per list of differences (a - b), judged alone."""
    from harness import aggregate

    labels = [None] if spec.per is None else [f"label{i}" for i in range(len(differences))]
    parts = []
    for label, diffs in zip(labels, differences):
        a, b = {s: 0.5 + d for s, d in enumerate(diffs)}, {s: 0.5 for s in range(len(diffs))}
        parts.append(claims.Part(label, a, b, aggregate.paired_difference(a, b)))
    return claims.family([claims.Result(spec, parts, tests=claims.tests_of(spec, parts))])[0]


def finding_text(spec: ClaimSpec, result: claims.Result) -> str:
    """What the reader gets: the sentence with its numbers (labels and settings made up), then the reading."""
    values = {**result.numbers(), **{f: "X" for f in FIELDS.findall(spec.sentence) if "." in f or
                                     LABEL_PLACEHOLDER.match(f)}}
    sentence = FIELDS.sub(lambda m: values.get(m.group(1), "?"), " ".join(spec.sentence.split()))
    return f"{sentence} {result.reading()}."


def declared_claims() -> list[tuple[str, ClaimSpec]]:
    from harness import spec

    return [(study, c) for study in spec.list_studies()
            for c in spec.load(study, "quick", components=False).spec.report.claims if c.a is not None]


@pytest.mark.parametrize("case", list(CASES))
def test_every_declared_claim_reads_right_whatever_the_sign_of_its_effect(case):
    found = declared_claims()
    assert len(found) >= 25
    for study, spec in found:
        parts = 3 if spec.per else 1
        result = synthetic(spec, [CASES[case]] * parts)
        text = finding_text(spec, result)
        assert "?" not in text, f"{study}/{spec.name}: {text}"
        assert not re.search(CONTRADICTION, text, re.I), f"{study}/{spec.name} ({case}): {text}"
        said = {"positive": "is positive", "negative": "is negative", "inconclusive": "contains zero"}[case]
        assert said in result.reading(), f"{study}/{spec.name} ({case}): {result.reading()}"
        if spec.expect in ("higher", "lower"):  # the verdict follows the sign, whatever the sentence says
            agrees = (case == "positive") == (spec.expect == "higher")
            outcome = "undecided" if case == "inconclusive" else "holds" if agrees else "fails"
            assert result.outcome() == outcome, f"{study}/{spec.name} ({case})"


def test_a_claim_with_parts_of_both_signs_reads_as_mixed_and_is_undecided():
    spec = claim(per="loss", expect="higher")
    result = synthetic(spec, [CASES["positive"], CASES["negative"], CASES["inconclusive"]])
    assert result.reading() == ("The difference is of mixed sign across the 3 labels of loss: 1 interval above "
                                "zero, 1 interval below zero, 1 interval containing zero")
    assert result.outcome() == "undecided"


def test_the_reading_says_when_the_family_adjustment_removes_a_difference():
    spec = claim()
    alone = synthetic(spec, [[0.02, 0.01, 0.03, 0.015, 0.005]])
    crowded = claims.family([alone] + [synthetic(spec, [CASES["inconclusive"]])] * 30)[0]
    assert alone.reading() == "The difference is positive: its whole 95 % interval lies above zero"
    assert crowded.reading().endswith("adjusted for the profile's 31 tests together (Holm), the difference is not "
                                      "shown") and crowded.outcome() == "undecided"


def test_an_equivalence_claim_says_whether_its_interval_is_inside_the_margin():
    spec = claim(expect="same", margin=1.0)
    assert "lies inside the band from -1.00 to +1.00 points" in synthetic(spec, [[0.002, -0.003, 0.001, 0.0, -0.001]]).reading()
    assert "interval is not wholly inside the band from -1.00 to +1.00 points" in synthetic(spec, [CASES["positive"]]).reading()


@pytest.mark.parametrize("sentence", ["A beats B by {mean} points.", "{mean} points higher ({low} to {high})",
                                      "Training longer drops it by {mean}."])
def test_a_sentence_that_asserts_a_direction_beside_a_signed_number_is_refused(sentence):
    with pytest.raises(ConfigError, match="which the records can contradict"):
        claim(sentence=sentence)
    claim(sentence=sentence.replace("{mean}", "{a}").replace("{low}", "{a}").replace("{high}", "{b}"))


def test_an_interval_end_that_rounds_to_zero_keeps_the_digits_that_show_its_sign():
    result = synthetic(claim(), [[0.0001, 0.00005, 0.00008, 0.00003, 0.00006]])  # 0.003 to 0.011 points
    assert result.numbers()["low"] == "+0.003" and result.numbers()["mean"] == "+0.01"
    assert "lies above zero" in result.reading()


def test_a_chapter_that_reasons_from_a_verdict_the_records_do_not_give_fails_the_check(run_cli, tmp_path):
    paper = tmp_path / "paper"
    shutil.copytree(REPO / "paper", paper, ignore=shutil.ignore_patterns("generated", "build"))
    chapter = paper / "chapters" / "nk_sampling.tex"
    text = chapter.read_text()
    assert "\\verdict{nk_sampling}{n_x_k_batches_help}{consistent}" in text
    chapter.write_text(text.replace("\\verdict{nk_sampling}{n_x_k_batches_help}{consistent}",
                                    "\\verdict{nk_sampling}{n_x_k_batches_help}{inconclusive}"))
    code, _, err = run_cli("check", "--studies", "nk_sampling", "--results", REPO / "results", "--paper", paper)
    assert code == 1
    assert "says nk_sampling/n_x_k_batches_help is 'inconclusive'; the records give 'consistent'" in err
