"""spec: validation errors name the file and key, profiles apply, the matrix expands, run_ids are stable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import matrix, spec
from harness.errors import ConfigError


def edit(experiments: Path, study: str, change) -> None:
    path = experiments / f"{study}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_profiles_expand_to_the_declared_matrix():
    for profile, seeds, budgets in (("full", 36, 5), ("quick", 3, 3), ("smoke", 1, 2)):  # full: pre-registered
        study = spec.load("loss_epochs", profile)
        # five losses the corrected way, five losses x the budgets the original's way, then the two baselines
        assert len(study.runs) == (5 + 5 * budgets + 2) * seeds
        corrected = [r for r in study.runs if r.axes.get("protocol") != "original"]
        labels = [r.axes.get("loss", r.axes.get("baseline")) for r in corrected]
        assert labels[::seeds] == ["contrastive", "triplet", "proxy_anchor", "nca", "margin", "raw_input", "untrained"]


def test_the_original_protocol_is_one_chain_per_seed_in_the_original_scripts_order():
    study = spec.load("loss_epochs", "quick")
    by_id = {r.run_id: r for r in study.runs}
    for seed in (0, 1, 2):
        chain = [r for r in study.runs if r.axes.get("protocol") == "original" and r.seed == seed]
        order = [(r.axes["loss"], r.axes["budget"]) for r in chain]
        assert order == [(loss, budget) for loss in ("contrastive", "triplet", "proxy_anchor", "nca", "margin")
                         for budget in (10, 20, 50)]
        assert chain[0].config.train.init is None
        assert [r.config.train.init for r in chain[1:]] == [r.run_id for r in chain[:-1]]
        assert [r.config.train.epochs for r in chain[:3]] == [1, 2, 5]  # the budgets scaled to a tenth
        for run in chain:  # the original's flaws, kept on purpose
            assert run.config.miner["type_of_triplets"] == "semihard"
            assert run.config.train.optimize_loss is False and run.config.eval.knn_reference == "training"
            assert by_id[run.run_id] is run
    corrected = [r for r in study.runs if r.axes.get("protocol") == "corrected"]
    assert all(r.config.train.init is None and r.config.eval.knn_reference == "clean" for r in corrected)


def test_profile_overrides_reach_the_resolved_config():
    quick = spec.load("loss_epochs", "quick").runs[0].config
    full = spec.load("loss_epochs", "full").runs[0].config
    assert quick.data.dataset == "fashion_mnist" and quick.data.train_per_class == 300
    assert full.data.dataset == "mnist" and full.data.train_per_class is None
    assert full.train.eval_epochs == [1, 5, 10, 20, 50]
    # Defaults survive where nothing overrides them.
    assert quick.eval.knn_k == 3 and quick.optimizer == {"name": "adam", "lr": 1e-3}


def test_paired_axis_sets_loss_and_miner_together():
    runs = {r.axes["loss"]: r.config for r in spec.load("loss_epochs", "smoke").runs
            if r.axes.get("protocol") == "corrected"}
    assert runs["nca"].miner is None and runs["proxy_anchor"].miner is None
    for tuple_loss in ("margin", "contrastive", "triplet"):
        assert runs[tuple_loss].miner["type_of_triplets"] == "semihard"
    assert runs["triplet"].loss["name"] == "triplet_margin"


def test_run_id_is_stable_and_sensitive():
    first = [r.run_id for r in spec.load("loss_epochs", "quick").runs]
    assert first == [r.run_id for r in spec.load("loss_epochs", "quick").runs]
    assert len(set(first)) == len(first)


def test_run_id_ignores_profile_name_but_not_science(experiments: Path):
    base = {r.run_id for r in spec.load("loss_epochs", "smoke", experiments).runs}
    edit(experiments, "loss_epochs", lambda d: d["profiles"]["smoke"].update(description="renamed"))
    assert {r.run_id for r in spec.load("loss_epochs", "smoke", experiments).runs} == base
    edit(experiments, "loss_epochs", lambda d: d["profiles"]["smoke"]["config"]["train"].update(batch_size=16))
    assert not base & {r.run_id for r in spec.load("loss_epochs", "smoke", experiments).runs}


def test_deep_merge_overrides_leaves_and_replaces_lists():
    merged = matrix.deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": 1}, {"a": {"y": [3]}, "c": 2})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}


BAD = [
    # (description, edit of the parsed YAML, words the one-line message must contain)
    ("typo in a config key", lambda d: d["config"]["train"].update(batch_sise=3),
     ["loss_epochs.yaml", "train.batch_sise", "did you mean 'batch_size'"]),
    ("wrong type", lambda d: d["profiles"]["smoke"]["config"]["train"].update(epochs="2"),
     ["profiles.smoke.config.", "train.epochs", "valid integer"]),
    ("negative epochs", lambda d: d["profiles"]["smoke"]["config"]["train"].update(epochs=-1, eval_epochs=[0]),
     ["train.epochs", "greater than or equal to 0"]),
    ("unknown dataset", lambda d: d["profiles"]["smoke"]["config"]["data"].update(dataset="digitz"),
     ["data.dataset", "unknown dataset 'digitz'", "did you mean 'digits'"]),
    ("unknown loss", lambda d: d["matrix"][0]["loss"][3]["set"]["loss"].update(name="ncaa"),
     ["matrix.loss", "unknown loss 'ncaa'", "did you mean 'nca'"]),
    ("unknown loss argument", lambda d: d["matrix"][0]["loss"][3]["set"]["loss"].update(softmax_scal=1),
     ["unknown argument 'softmax_scal'", "did you mean 'softmax_scale'"]),
    ("unknown metric", lambda d: d["config"]["eval"].update(metrics=["knn_acuracy"]),
     ["eval.metrics", "did you mean 'knn_accuracy'"]),
    ("unknown model", lambda d: d["config"]["model"].update(name="thesis_convnett"),
     ["model.name", "unknown model"]),
    ("unknown top-level key", lambda d: d.update(seed=[1]), ["unknown key 'seed'", "did you mean 'seeds'"]),
    ("typo in a profile key", lambda d: d["profiles"]["smoke"].update(seed=[1]),
     ["unknown key 'profiles.smoke.seed'", "did you mean 'seeds'"]),
    ("report names an unknown axis", lambda d: d["report"]["tables"][0].update(rows="los"),
     ["report.tables[0].rows", "did you mean 'loss'"]),
    ("empty matrix axis", lambda d: d["matrix"][0].update(loss=[]), ["matrix.loss", "empty axis"]),
    ("missing profile", lambda d: d["profiles"].pop("smoke"), ["profiles", "missing smoke"]),
    ("estimate upside down", lambda d: d["profiles"]["full"]["estimate"].update(low=9, high=1),
     ["estimate", "high (1.0) is below low (9.0)"]),
    ("evaluation after the last epoch", lambda d: d["profiles"]["smoke"]["config"]["train"].update(eval_epochs=[1, 3]),
     ["train.eval_epochs", "last epoch"]),
    ("text where a flag belongs", lambda d: d["matrix"][0]["loss"][0]["set"]["loss"]["distance"].update(
        normalize_embeddings="yes"), ["normalize_embeddings", "expected bool"]),
]


@pytest.mark.parametrize("what,change,words", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_one_clear_line(experiments: Path, what, change, words):
    edit(experiments, "loss_epochs", change)
    with pytest.raises(ConfigError) as info:
        spec.load("loss_epochs", "smoke", experiments)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (what, message)


def test_yaml_syntax_error_names_line(experiments: Path):
    path = experiments / "loss_epochs.yaml"
    path.write_text(path.read_text().replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2"))
    with pytest.raises(ConfigError, match=r"loss_epochs.yaml: line \d+, column \d+: YAML syntax error"):
        spec.load("loss_epochs", "smoke", experiments)


def test_unknown_study_and_profile_suggest_names():
    with pytest.raises(ConfigError, match="unknown study 'loss_epoch'.*did you mean 'loss_epochs'"):
        spec.load("loss_epoch")
    with pytest.raises(ConfigError, match="unknown profile 'quik'.*did you mean 'quick'"):
        spec.load("loss_epochs", "quik")


def test_cli_reports_config_error_in_one_line_with_exit_2(run_cli, monkeypatch, experiments: Path):
    edit(experiments, "loss_epochs", lambda d: d["config"]["train"].update(batch_sise=3))
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", experiments)
    code, out, err = run_cli("run", "loss_epochs", "--profile", "smoke", "--results", experiments.parent / "r")
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "batch_sise" in err
    assert not (experiments.parent / "r").exists()


# --- matrices of several blocks, named axis paths, profile overrides (study arcface's shape) ---

def _study(experiments: Path, name: str, body: dict) -> spec.Study:
    doc = {"study": name, "title": "t", "question": "q", "seeds": [0],
           "config": {"data": {"dataset": "digits"}, "train": {"epochs": 1, "eval_epochs": [1]},
                      "eval": {"metrics": ["knn_accuracy"]}},
           "profiles": {p: {"description": p} for p in spec.PROFILES}, **body}
    (experiments / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return spec.load(name, "smoke", experiments)


def test_blocks_are_a_union_and_a_baseline_has_no_grid_axes(experiments):
    study = _study(experiments, "grid", {"matrix": [
        {"head": [{"label": "softmax", "set": {"loss": {"name": "softmax_ce"}}}]},
        {"head": [{"label": "arcface", "set": {"loss": {"name": "arcface"}}}],
         "m": {"path": "loss.m", "values": [0.1, 0.4]}, "s": {"path": "loss.s", "values": [2, 64]}}]})
    assert [r.axes for r in study.runs] == [
        {"head": "softmax"}, {"head": "arcface", "m": 0.1, "s": 2}, {"head": "arcface", "m": 0.1, "s": 64},
        {"head": "arcface", "m": 0.4, "s": 2}, {"head": "arcface", "m": 0.4, "s": 64}]
    # The whole component is set before paths inside it, whatever order the axes are written in.
    assert study.runs[4].config.loss == {"name": "arcface", "m": 0.4, "s": 64}
    assert study.runs[0].config.loss == {"name": "softmax_ce"}
    assert study.axes == {"head": ["softmax", "arcface"], "m": [0.1, 0.4], "s": [2, 64]}


def test_inner_path_written_before_its_component_still_lands(experiments):
    study = _study(experiments, "order", {"matrix": {
        "m": {"path": "loss.m", "values": [0.3]},
        "head": [{"label": "arcface", "set": {"loss": {"name": "arcface"}}}]}})
    assert study.runs[0].config.loss == {"name": "arcface", "m": 0.3}


def test_profile_axis_replaces_it_in_every_block_and_new_axes_join_all(experiments):
    study = _study(experiments, "over", {
        "matrix": [{"head": [{"label": "softmax", "set": {"loss": {"name": "softmax_ce"}}}]},
                   {"head": [{"label": "arcface", "set": {"loss": {"name": "arcface"}}}],
                    "m": {"path": "loss.m", "values": [0.1, 0.2, 0.3]}}],
        "profiles": {"full": {"description": "f"}, "quick": {"description": "q"},
                     "smoke": {"description": "s", "matrix": {"m": {"path": "loss.m", "values": [0.5]},
                                                              "knn": {"path": "eval.knn_k", "values": [1, 5]}}}}})
    assert sorted((r.axes["head"], r.axes.get("m"), r.axes["knn"]) for r in study.runs) == sorted([
        ("softmax", None, 1), ("softmax", None, 5), ("arcface", 0.5, 1), ("arcface", 0.5, 5)])


@pytest.mark.parametrize("matrix, message", [
    ({"m": {"path": "loss.m"}}, "an axis is a list of values or {path"),
    ({"m": {"path": "loss.m", "values": []}}, "empty axis"),
    ([{"k": {"path": "eval.knn_k", "values": [1]}}, {"k": {"path": "eval.knn_k", "values": [1]}}],
     "two cells share the labels"),
])
def test_bad_matrix_shapes_are_one_line(experiments, matrix, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{")):
        _study(experiments, "bad", {"matrix": matrix})


def test_report_names_are_checked_at_load(experiments):
    base = {"matrix": {"k": {"path": "eval.knn_k", "values": [1, 3]}}}
    with pytest.raises(ConfigError, match="report.figures\\[0\\].y: unknown axis 'kk'"):
        _study(experiments, "rep", {**base, "report": {"figures": [
            {"name": "h", "kind": "heatmap", "x": "k", "y": "kk", "metrics": ["knn_accuracy"], "caption": "c"}]}})
    with pytest.raises(ConfigError, match="a heatmap needs 'y'"):
        _study(experiments, "rep", {**base, "report": {"figures": [
            {"name": "h", "kind": "heatmap", "x": "k", "metrics": ["knn_accuracy"], "caption": "c"}]}})
    with pytest.raises(ConfigError, match="unknown metric 'val_knn_acuracy'.*did you mean 'val_knn_accuracy'"):
        _study(experiments, "rep", {**base, "report": {"figures": [
            {"name": "l", "x": "epoch", "hue": "k", "metrics": ["knn_accuracy"], "caption": "c",
             "select": {"axes": ["k"], "by": "val_knn_acuracy"}}]}})
    with pytest.raises(ConfigError, match="report.tables\\[0\\].epoch: unknown metric 'val_precision_at_2'"):
        _study(experiments, "rep", {**base, "report": {"tables": [
            {"name": "t", "metric": "knn_accuracy", "rows": "k", "columns": "epoch", "caption": "c",
             "epoch": "best:val_precision_at_2"}]}})
    study = _study(experiments, "rep", {**base, "report": {"tables": [
        {"name": "t", "metric": "unseen_episode_accuracy", "rows": "k", "columns": "epoch", "caption": "c",
         "where": {"k": 1}}]}})
    assert len(study.runs) == 2


def test_new_studies_load_in_every_profile():
    sizes = {(name, p): len(spec.load(name, p).runs) for name in ("arcface", "one_shot") for p in spec.PROFILES}
    # two datasets: softmax over 6 learning rates x 5 momenta (the same budget as ArcFace's grid), the grid, two baselines
    assert sizes[("arcface", "full")] == 2 * (6 * 5 + 5 * 6 + 2) * 9  # nine pre-registered seeds
    assert sizes[("arcface", "quick")] == (4 + 2 * 2 + 2) * 5  # five seeds in quick
    assert sizes[("one_shot", "full")] == 10 * (2 + 2) * 5  # per split: two distances, two baselines; 5 seeds
    one_shot = spec.load("one_shot", "full").runs
    euclid = next(r for r in one_shot if r.axes == {"split": "30-70", "distance": "euclidean"})
    assert euclid.config.data.split == {"name": "first", "seen": 30}
    assert euclid.config.loss["distance"] == {"name": "lp", "normalize_embeddings": False}
    assert euclid.config.eval.distance == "euclidean" and euclid.config.loss["margin"] == 0.3


def test_a_component_of_another_name_replaces_the_default_whole():
    assert matrix.deep_merge({"model": {"name": "a", "embedding_dim": 128}}, {"model": {"name": "b", "blocks": [1]}}) \
        == {"model": {"name": "b", "blocks": [1]}}
    assert matrix.deep_merge({"model": {"name": "a", "embedding_dim": 128}}, {"model": {"name": "a", "dropout": 0}}) \
        == {"model": {"name": "a", "embedding_dim": 128, "dropout": 0}}
    assert spec.load("one_shot", "full").runs[0].config.model == {"name": "cifar_resnet", "blocks": [9, 9, 9]}


def test_a_run_reached_from_two_blocks_is_one_run_with_both_labels(experiments):
    study = _study(experiments, "sweeps", {"matrix": [
        {"k": {"path": "eval.knn_k", "values": [1, 3]}},
        {"d": {"path": "eval.distance", "values": ["euclidean", "cosine"]}}]})
    assert [r.axes for r in study.runs] == [{"k": 1}, {"k": 3, "d": "euclidean"}, {"d": "cosine"}]
    with pytest.raises(ConfigError, match="labelled k = 3 in one block and 'three' in another"):
        _study(experiments, "clash", {"matrix": [
            {"k": {"path": "eval.knn_k", "values": [3]}},
            {"k": [{"label": "three", "set": {"eval.knn_k": 3}}]}]})


def test_cub_cars_sweeps_share_their_baseline():
    runs = spec.load("cub_cars", "full").runs
    baseline = [r for r in runs if r.axes.get("dim") == 512 and r.axes.get("margin") == 0.5]
    assert len(baseline) == 2 * 10  # two datasets, ten seeds (the pre-registration's)
    assert all(r.axes["batch"] == 100 and r.axes["loss"] == "contrastive" for r in baseline)
    # the sweeps' 31 settings, the two read by three epoch rules (CUB only) and two baselines per dataset
    assert len(runs) == (31 + 2 + 2 * 2) * 10
    rules = [r for r in runs if r.axes.get("protocol") == "epoch_rules"]
    assert {r.axes["loss"] for r in rules} == {"contrastive", "proxy_anchor"}
    assert all(r.config.data.val_classes == 20 and r.config.train.eval_epochs == list(range(1, r.config.train.epochs + 1))
               for r in rules)


CHAIN = {"matrix": {"loss": [{"label": "nca", "set": {"loss": {"name": "nca"}}},
                             {"label": "triplet", "set": {"loss": {"name": "triplet_margin"}}}],
                    "budget": [{"label": 1, "set": {"train.epochs": 1, "train.eval_epochs": [1]}},
                               {"label": 2, "set": {"train.epochs": 2, "train.eval_epochs": [2]}}],
                    "k": {"path": "eval.knn_k", "values": [1, 3]}},
         "chains": [{"axes": ["loss", "budget"], "where": {"k": 1}}], "seeds": [0, 1]}


def test_a_chain_continues_each_run_from_the_one_before_it_per_seed(experiments):
    study = _study(experiments, "chain", CHAIN)
    by = {(r.axes["loss"], r.axes["budget"], r.axes["k"], r.seed): r for r in study.runs}
    for seed in (0, 1):
        order = [by[(loss, budget, 1, seed)] for loss in ("nca", "triplet") for budget in (1, 2)]
        assert order[0].parent is None
        assert [r.parent for r in order[1:]] == [r.run_id for r in order[:-1]]  # across the loss change too
        assert all(by[(loss, b, 3, seed)].parent is None for loss in ("nca", "triplet") for b in (1, 2))  # where
    # The parent is part of the identity: the same config continued from elsewhere is another run.
    unchained = _study(experiments, "plain", {**CHAIN, "chains": []})
    ids = {r.run_id for r in unchained.runs}
    assert by[("nca", 1, 1, 0)].run_id in ids and by[("nca", 2, 1, 0)].run_id not in ids


def test_a_chain_names_known_axes(experiments):
    with pytest.raises(ConfigError, match="chains\\[0\\]: unknown axis 'budgte'.*did you mean 'budget'"):
        _study(experiments, "chain", {**CHAIN, "chains": [{"axes": ["loss", "budgte"]}]})
