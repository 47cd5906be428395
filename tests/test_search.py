"""Declared searches (harness.search): trials planned from a seeded random sampler, scored on class-disjoint folds,
the choice read from the records, the chosen setting run with the profile's seeds; determinism, resume after
SIGKILL, equal budgets and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import cli, search, spec, store
from harness.errors import ConfigError
from tests.conftest import REPO

TINY = {
    "study": "tiny_search",
    "title": "Two losses tuned alike",
    "question": "Which of two losses is better once each is tuned with the same budget?",
    "config": {
        "data": {"dataset": "digits", "train_per_class": 20, "test_per_class": 10, "split": {"name": "first", "seen": 6}},
        "model": {"name": "thesis_convnet", "embedding_dim": 16, "dropout": 0.0},
        "optimizer": {"name": "adam", "lr": 1.0e-3},
        "train": {"batch_size": 32, "epochs": 4, "eval_epochs": [4]},
        "eval": {"metrics": ["map_at_r", "precision_at_1"], "classes": "unseen"},
    },
    "matrix": {"loss": [{"label": "contrastive", "set": {"loss": {"name": "contrastive"}}},
                        {"label": "triplet", "set": {"loss": {"name": "triplet_margin"}}}],
               "setting": [{"label": "default", "set": {}}]},
    "seeds": [0, 1],
    "search": {"methods": "loss", "start": {"setting": "default"}, "trials": 3, "folds": 2,
               "objective": {"metric": "map_at_r"}, "sampler": {"name": "random", "seed": 0},
               "space": {"*": {"optimizer.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
                         "contrastive": {"loss.neg_margin": {"low": 0.4, "high": 1.6}},
                         "triplet": {"loss.margin": {"low": 0.01, "high": 0.5, "log": True}}}},
    "profiles": {p: {"description": "scikit-learn digits, classes 0-5 seen"} for p in ("full", "quick", "smoke")},
}
# 2 losses x 3 trials x 2 folds, 2 default-setting runs x 2 seeds, then 2 chosen settings x 2 seeds
TRIAL_RUNS, MATRIX_RUNS, CHOSEN_RUNS = 12, 4, 4


def write_study(folder: Path, doc: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_search.yaml"
    path.write_text(yaml.safe_dump(doc or TINY, sort_keys=False))
    return folder


def load(folder: Path, doc: dict | None = None) -> spec.Study:
    return spec.load("tiny_search", "smoke", write_study(folder, doc))


def records(results: Path) -> dict[str, dict]:
    """run_id -> what a record says of its run (no timing, host or date)."""
    out = {}
    for path in sorted((results / "tiny_search" / "smoke").glob("*.json")):
        raw = json.loads(path.read_text())
        out[raw["run_id"]] = {k: raw.get(k) for k in ("axes", "config", "metrics", "loss_curve", "search", "status")}
    return out


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(experiments folder, results) of one uninterrupted search from empty, through `harness run`."""
    root = tmp_path_factory.mktemp("search")
    folder = write_study(root / "experiments")
    os.environ["HARNESS_EXPERIMENTS"] = str(folder)
    try:
        spec.EXTRA_DIRS = (folder,)
        assert cli.main(["run", "tiny_search", "--profile", "smoke", "--results", str(root / "results"),
                         "--no-progress"]) == 0
    finally:
        spec.EXTRA_DIRS = ()
        del os.environ["HARNESS_EXPERIMENTS"]
    return folder, root / "results"


def test_one_command_runs_the_trials_then_each_chosen_setting(searched):
    folder, results = searched
    found = records(results)
    assert len(found) == TRIAL_RUNS + MATRIX_RUNS + CHOSEN_RUNS
    trials = [r for r in found.values() if r["axes"]["setting"] == "trial"]
    assert len(trials) == TRIAL_RUNS
    assert all(r["search"]["sampler"] == "optuna.samplers.RandomSampler" for r in trials)
    assert {(r["search"]["method"], r["search"]["trial"], r["search"]["fold"]) for r in trials} == {
        (m, t, f) for m in ("contrastive", "triplet") for t in range(3) for f in range(2)}
    for record in trials:  # scored on the fold's classes, trained on the others, never on the test classes
        fold = record["config"]["data"]["val_fold"]
        assert fold == {"fold": record["search"]["fold"], "folds": 2}
        assert "val_map_at_r" in record["metrics"][-1]
    chosen = [r for r in found.values() if r["axes"]["setting"] == "tuned"]
    assert sorted((r["search"]["method"], r["config"]["seed"]) for r in chosen) == [
        ("contrastive", 0), ("contrastive", 1), ("triplet", 0), ("triplet", 1)]
    assert all(r["config"]["data"]["val_fold"] is None for r in chosen)


def test_two_searches_from_empty_give_the_same_trials_and_identical_records(searched, tmp_path, run_cli,
                                                                           monkeypatch):
    folder, results = searched
    monkeypatch.setattr(spec, "EXTRA_DIRS", (folder,))
    code, _, err = run_cli("run", "tiny_search", "--profile", "smoke", "--results", tmp_path, "--no-progress")
    assert code == 0, err
    assert records(tmp_path) == records(results)


def test_the_choice_read_from_the_records_is_the_best_mean_over_folds(searched):
    folder, results = searched
    study = spec.load("tiny_search", "smoke", folder)
    scan = store.scan(results, "tiny_search", "smoke")
    found = records(results)
    for method in ("contrastive", "triplet"):
        means: dict[int, list[float]] = {}
        for record in found.values():
            facts = record["search"] or {}
            if record["axes"]["setting"] == "trial" and facts["method"] == method:
                means.setdefault(facts["trial"], []).append(record["metrics"][-1]["val_map_at_r"])
        best = max(means, key=lambda t: (sum(means[t]) / 2, -t))
        choice = study.search.choose(method, scan.ok, scan.failed)
        assert choice.trial == best and choice.objective == pytest.approx(sum(means[best]) / 2)
        chosen = [r for r in found.values() if r["axes"] == {"loss": method, "setting": "tuned"}]
        assert {r["search"]["chosen_trial"] for r in chosen} == {best}
        for key, value in search.proposals(study.search.spec, method)[best].items():
            section, name = key.split(".")
            assert all(r["config"][section][name] == value for r in chosen), key


def test_a_search_killed_mid_trial_resumes_to_the_same_records(searched, tmp_path):
    folder, results = searched
    env = {**os.environ, "HARNESS_EXPERIMENTS": str(folder)}
    command = [sys.executable, "-m", "harness", "run", "tiny_search", "--profile", "smoke", "--results",
               str(tmp_path), "--no-progress"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder_of_records = tmp_path / "tiny_search" / "smoke"
    deadline = time.monotonic() + 120
    while len(list(folder_of_records.glob("*.json"))) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list(folder_of_records.glob("*.json")))
    assert 5 <= partial < TRIAL_RUNS
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert records(tmp_path) == records(results)


def test_proposals_depend_on_seed_method_and_trial_number_only(tmp_path):
    study = load(tmp_path)
    more = json.loads(json.dumps(TINY))
    more["search"]["trials"] = 5
    longer = load(tmp_path / "more", more)
    for method in ("contrastive", "triplet"):
        assert longer.search.proposals[method][:3] == study.search.proposals[method]
    assert study.search.proposals["contrastive"] != study.search.proposals["triplet"]
    other = json.loads(json.dumps(TINY))
    other["search"]["sampler"]["seed"] = 1
    assert load(tmp_path / "other", other).search.proposals != study.search.proposals


def test_unequal_budgets_are_refused_unless_the_study_says_why(tmp_path):
    doc = json.loads(json.dumps(TINY))
    doc["search"]["trials"] = {"contrastive": 3, "triplet": 2}
    with pytest.raises(ConfigError, match=r"unequal budgets \(contrastive 3, triplet 2\).*search\.unequal_budget"):
        load(tmp_path, doc)
    doc["search"]["unequal_budget"] = "triplet's space has one key, contrastive's two"
    study = load(tmp_path / "said", doc)
    assert [len(p) for p in study.search.proposals.values()] == [3, 2]


@pytest.mark.parametrize("change, words", [
    (lambda d: d["search"]["space"]["triplet"].update({"loss.marginn": {"low": 0.1, "high": 0.2}}), "marginn"),
    (lambda d: d["search"]["space"].update({"tripplet": d["search"]["space"].pop("triplet")}),
     "search.space.tripplet: no method 'tripplet' on axis loss (did you mean 'triplet'?)"),
    (lambda d: d["search"]["space"]["contrastive"].update({"loss.neg_margin": {"low": 2.0, "high": 1.0}}),
     "low (2.0) must be below high (1.0)"),
    (lambda d: d["search"]["sampler"].update({"name": "tpe"}), "proposals depend on earlier trials' results"),
    (lambda d: d["search"].update({"folds": 1}), "search.folds"),
    (lambda d: d["search"]["objective"].update({"metric": "map_at_rr"}), "search.objective.metric: 'map_at_rr'"),
])
def test_a_mistake_in_the_search_is_one_line_naming_the_file_and_key(tmp_path, change, words):
    doc = json.loads(json.dumps(TINY))
    change(doc)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, doc)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "tiny_search.yaml") in message and words in message, message


def test_validation_folds_hold_out_every_kth_seen_class(tmp_path):
    from harness.data import load as load_dataset, run_splits

    run = load(tmp_path).search.runs[1]  # contrastive, trial 0, fold 1
    assert run.search == {**run.search, "trial": 0, "fold": 1}
    parts = run_splits(load_dataset("digits"), run.config.data)
    assert parts.val_classes == [1, 3, 5] and parts.seen == [0, 2, 4]
    assert set(parts.val.labels.tolist()) == {1, 3, 5} and set(parts.train.labels.tolist()) == {0, 2, 4}


def test_include_start_makes_the_start_cells_values_trial_zero(tmp_path):
    doc = json.loads(json.dumps(TINY))
    doc["search"]["include_start"] = True
    with pytest.raises(ConfigError, match=r"search\.space\.contrastive\.loss\.neg_margin: the start cell has no "
                                          "value for it"):
        load(tmp_path, doc)  # the contrastive cell leaves neg_margin to the library: nothing to start from
    doc["matrix"]["loss"][0]["set"]["loss"]["neg_margin"] = 1.0
    doc["matrix"]["loss"][1]["set"]["loss"]["margin"] = 0.05
    study = load(tmp_path / "start", doc)
    assert study.search.proposals["contrastive"][0] == {"optimizer.lr": 1.0e-3, "loss.neg_margin": 1.0}
    assert study.search.proposals["triplet"][0] == {"optimizer.lr": 1.0e-3, "loss.margin": 0.05}
    drawn = load(tmp_path / "plain").search.proposals
    assert study.search.proposals["triplet"][1:] == drawn["triplet"][:2]  # then the sampler's draws, in order
    trial_zero = [r for r in study.search.runs if r.search["trial"] == 0 and r.search["method"] == "triplet"]
    assert [r.config.loss["margin"] for r in trial_zero] == [0.05, 0.05]


def test_a_start_setting_that_wins_fills_the_chosen_cell_with_the_start_runs(tmp_path, run_cli, monkeypatch):
    """include_start's trial 0 is the default: when it wins, the chosen runs are the start cell's runs (the same
    run_ids); they are not run again, and their records are read under both labels, counted once."""
    from harness import plan as planner

    doc = json.loads(json.dumps(TINY))
    doc["search"]["include_start"] = True
    doc["matrix"]["loss"][0]["set"]["loss"]["neg_margin"] = 1.0
    doc["matrix"]["loss"][1]["set"]["loss"]["margin"] = 0.05
    folder = write_study(tmp_path / "experiments", doc)
    monkeypatch.setattr(spec, "EXTRA_DIRS", (folder,))
    real = search.SearchPlan.choose

    def start_wins(self, method, ok, failed):
        found = real(self, method, ok, failed)
        if found.trial is None or method != "contrastive":
            return found
        return search.Choice(method, found.trials, found.recorded, found.runs, 0, dict(self.proposals[method][0]),
                             found.scores[0], found.scores)

    monkeypatch.setattr(search.SearchPlan, "choose", start_wins)
    code, _, err = run_cli("run", "tiny_search", "--profile", "smoke", "--results", tmp_path / "r", "--no-progress")
    assert code == 0, err
    study = spec.load("tiny_search", "smoke", folder)
    scan = store.scan(tmp_path / "r", "tiny_search", "smoke")
    # triplet's own choice: new runs unless its start setting won too
    new = 0 if study.search.choose("triplet", scan.ok, scan.failed).trial == 0 else 2
    assert len(records(tmp_path / "r")) == TRIAL_RUNS + MATRIX_RUNS + new
    read = planner.records_of(study, scan)
    tuned = [r for r in read if r.axes == {"loss": "contrastive", "setting": "tuned"}]
    default = [r for r in read if r.axes == {"loss": "contrastive", "setting": "default"}]
    assert sorted(r.run_id for r in tuned) == sorted(r.run_id for r in default) and len(tuned) == 2
    assert search.planned(search.with_chosen(study, scan)) == TRIAL_RUNS + MATRIX_RUNS + new
    code, out, _ = run_cli("show", "tiny_search", "--profile", "smoke", "--results", tmp_path / "r")
    assert "contrastive: chose trial 0" in out and "the start cell's runs are its chosen runs" in out
