"""harness show and harness run --dry-run: the expanded matrix with each run's state, one run's resolved config,
and the estimated cost of what is missing; nothing trained or written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import plan as planner
from harness import overrides, spec, store
from tests.conftest import corrected_only, fake_record, recorded


def test_the_estimate_is_measured_rates_times_the_missing_work():
    runs = [r for r in spec.load("loss_epochs", "smoke", components=False).runs if r.axes.get("protocol") ==
            "corrected"]
    done, todo = runs[0], runs[1]
    assert done.config.train.epochs == 2 and todo.config.train.eval_epochs == [1, 2]
    # 2 epochs x 300 images in 6 s: 0.01 s per image; 2 evaluations in 4 s; 1 s of setup.
    record = store.validate(recorded(done, train_size=300, train_s=6.0, eval_s=4.0, wall_s=11.0))
    found = planner.estimate([todo], [record])
    assert found.seconds == pytest.approx(2 * 300 * 0.01 + 2 * 2.0 + 1.0)
    assert found.rough == 0 and "estimate from the measured rates of 1 recorded run" in found.basis
    assert planner.estimate([todo], []) is None


@pytest.fixture
def small(experiments, monkeypatch):
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    path = experiments / "loss_epochs.yaml"
    path.write_text(yaml.safe_dump(corrected_only(yaml.safe_load(path.read_text()), ("nca", "triplet"))))
    return spec.load("loss_epochs", "smoke", experiments, components=False)


def test_show_lists_every_run_with_its_state_and_the_cost_of_the_missing(small, run_cli, tmp_path: Path):
    nca, triplet = (next(r for r in small.runs if r.axes.get("loss") == name) for name in ("nca", "triplet"))
    store.write(tmp_path, recorded(nca, train_size=300, train_s=6.0, eval_s=4.0, wall_s=11.0))
    failed = fake_record(triplet.config_dict(), status="failed", axes=triplet.axes, study="loss_epochs")
    store.write(tmp_path, failed)
    code, out, err = run_cli("show", "loss_epochs", "--profile", "smoke", "--results", tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "4 runs: 1 recorded, 1 failed, 2 missing"
    assert any(line.split()[:2] == ["recorded", nca.run_id] and "loss=nca" in line for line in lines)
    assert any(line.split()[:2] == ["failed", triplet.run_id] and "RunFailure" in line for line in lines)
    assert sum(line.strip().startswith("missing ") for line in lines) == 2  # the two baselines
    # The two baselines train nothing: one evaluation each (2 s) and setup (1 s).
    assert lines[-1].startswith("estimated cost of 2 run(s): about 6 s (estimate from the measured rates")


def test_show_run_prints_the_resolved_config_that_hashes_to_its_id(small, run_cli, tmp_path: Path):
    from harness import identity

    run = small.runs[0]
    code, out, err = run_cli("show", "loss_epochs", "--profile", "smoke", "--results", tmp_path,
                             "--run", run.run_id[:6])
    assert code == 0, err
    assert out.startswith(f"run {run.run_id} of loss_epochs/smoke: missing")
    body = out.split("config (resolved; its hash is the run_id):\n", 1)[1].split("\nexecution (outside", 1)[0]
    config = yaml.safe_load(body)
    assert config == run.config_dict() and identity.run_id(config) == run.run_id
    assert "no estimate for 1 run(s)" in out


def test_show_run_with_overrides_names_them(small, run_cli, tmp_path: Path):
    changed = spec.load("loss_epochs", "smoke", components=False,
                        overrides=overrides.parse(["train.epochs=3"]))
    run = next(r for r in changed.runs if r.overrides)
    code, out, err = run_cli("show", "loss_epochs", "--profile", "smoke", "--results", tmp_path, "--run",
                             run.run_id, "--set", "train.epochs=3")
    assert code == 0, err
    assert "--set: train.epochs=3, train.eval_epochs=[1, 2, 3]" in out
    code, out, _ = run_cli("show", "loss_epochs", "--profile", "smoke", "--results", tmp_path, "--set",
                           "train.epochs=3")
    assert "2 changed by --set (new run ids)" in out.splitlines()[1]


@pytest.mark.parametrize("prefix, expected", [("zzzz", "no run of loss_epochs/smoke has that id"),
                                              ("ab", "no run of loss_epochs/smoke has that id")])
def test_show_run_refuses_an_unknown_id(small, run_cli, tmp_path: Path, prefix, expected):
    code, out, err = run_cli("show", "loss_epochs", "--profile", "smoke", "--results", tmp_path, "--run", prefix)
    assert code == 2 and out == "" and expected in err and len(err.splitlines()) == 1


def test_show_a_profile_never_run_gives_the_study_files_estimate(run_cli, tmp_path: Path):
    code, out, err = run_cli("show", "cub_cars", "--profile", "full", "--results", tmp_path)
    assert code == 0, err
    declared = spec.load("cub_cars", "full", components=False).spec.profiles["full"].estimate
    assert out.splitlines()[-1].startswith(f"estimated cost of {len(spec.load('cub_cars', 'full', components=False).runs)}"
                                           f" run(s): {declared.low:g}-{declared.high:g} {declared.unit} (the study "
                                           "file's estimate")


def test_dry_run_lists_what_would_run_and_writes_nothing(small, run_cli, tmp_path: Path):
    results = tmp_path / "r"
    code, out, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--dry-run")
    assert code == 0 and out == ""
    assert "4 runs in the matrix: 0 recorded, 4 to run" in err
    would = [line.split()[3] for line in err.splitlines() if line.strip().startswith("would run")]
    assert would == [r.run_id for r in planner.parents_first(small.runs)]
    assert "dry run: nothing was trained or written" in err
    assert "inputs: every dataset and weights file these runs need is present and verified" in err
    assert not results.exists()
    # With one run recorded, only the rest is listed.
    store.write(results, recorded(small.runs[0], train_size=300, train_s=6.0, eval_s=4.0, wall_s=11.0))
    code, _, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", results, "--dry-run",
                           "--jobs", "2")
    assert code == 0 and small.runs[0].run_id not in err.split("to run", 1)[1]
    assert "1 recorded, 3 to run" in err and "--jobs 2 packs them into 2 processes" in err
    assert sorted(p.name for p in (results / "loss_epochs" / "smoke").iterdir()) == [f"{small.runs[0].run_id}.json"]


def test_dry_run_lists_every_missing_input_at_once(run_cli, tmp_path: Path, monkeypatch):
    """cub_cars full with no data: both datasets and the ImageNet weights, each with how to get it, before any
    launch (the launch's preflight refuses the same list)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, _, err = run_cli("run", "cub_cars", "--profile", "full", "--dry-run", "--data", tmp_path / "none",
                           "--results", tmp_path / "r")
    assert code == 0
    missing = [line for line in err.splitlines() if line.startswith("missing input")]
    assert len(missing) == 3 and "(1/3): cub200 not found" in missing[0] and "(2/3): cars196 not found" in missing[1]
    assert "harness fetch cub200" in missing[0] and "resnet50" in missing[2]
    assert err.splitlines()[-1] == "dry run: nothing was trained or written"


def test_show_takes_study_slash_item_as_captions_name_it(run_cli):
    """`harness show arcface/reference` lists the runs behind that table (verify takes the same name); a
    mistyped item is one line with a suggestion."""
    code, out, err = run_cli("show", "arcface/reference", "--profile", "quick")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "arcface/reference: drawn from 10 runs" and "10 runs: 10 recorded" in out
    code, _, err = run_cli("show", "arcface/refrence", "--profile", "quick")
    assert code != 0 and "no table, figure or claim 'refrence'" in err and "did you mean 'reference'" in err


def test_a_misspelt_loss_argument_is_caught_by_show_as_by_run(experiments, run_cli, monkeypatch):
    """`harness list` stays light (no torch: it checks names, types and shapes); `harness show <study>` checks
    every component's arguments, as run does."""
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    path = experiments / "nk_sampling.yaml"
    path.write_text(path.read_text().replace("{name: multi_similarity, alpha: 2,", "{name: multi_similarity, alpah: 2,"))
    code, _, err = run_cli("show", "nk_sampling", "--profile", "quick")
    assert code != 0 and "alpah" in err
