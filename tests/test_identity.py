"""identity: run ids are stable hashes, new options and execution settings never orphan a committed record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import identity, schema, search, spec, store

REPO = Path(__file__).resolve().parent.parent


def test_run_id_is_a_pinned_hash_of_canonical_json():
    config = {"b": [1, 2], "a": {"y": 1.5, "x": None}}
    # Key order does not matter; values do. The pinned value guards against an accidental change of hashing.
    assert identity.run_id(config) == identity.run_id({"a": {"x": None, "y": 1.5}, "b": [1, 2]})
    assert identity.run_id(config) != identity.run_id({**config, "b": [1, 3]})
    assert identity.run_id(config) == "ed50af309349a493"  # sha256('{"a":{"x":null,"y":1.5},"b":[1,2]}')[:16]


def committed_records() -> list[Path]:
    return sorted((REPO / "results").glob("*/*/*.json"))


def test_every_committed_record_is_a_run_of_the_current_matrix():
    """The refactors keep run ids: each committed record is reached by its study's current YAML."""
    assert committed_records()
    wanted: dict[tuple[str, str], set[str]] = {}
    for path in committed_records():
        study, profile = path.parent.parent.name, path.parent.name
        if (study, profile) not in wanted:
            loaded = spec.load(study, profile, components=False)
            # with a declared search's chosen runs, as the committed records choose them (harness.search)
            loaded = search.with_chosen(loaded, store.scan(path.parent.parent.parent, study, profile))
            wanted[study, profile] = {r.run_id for r in loaded.runs}
        assert path.stem in wanted[study, profile], f"{path} is no longer a run of {study}/{profile}"
        record = store.read(path)  # the typed record: its config hashes to its run_id
        assert identity.run_id(record.config) == record.run_id


def test_added_options_at_their_defaults_are_left_out_and_anything_else_counts():
    run = spec.load("loss_epochs", "quick", components=False).runs[0]
    dumped = run.config_dict()
    assert dumped["data"]["split"] == {"name": "all"} and dumped["train"]["augment"] == []
    kept = identity.identity(dumped)
    assert "split" not in kept["data"] and "augment" not in kept["train"]
    changed = {**dumped, "train": {**dumped["train"], "augment": ["hflip"]}}
    assert identity.run_id(changed) != run.run_id


@pytest.mark.parametrize("section,key", identity.ADDED_OPTIONS)
def test_each_added_option_has_a_schema_default(section, key):
    """One source of defaults: the identity reads them from the schema, so they cannot disagree."""
    model = {"data": schema.DataConfig, "eval": schema.EvalConfig, "train": schema.TrainConfig}[section]
    assert not model.model_fields[key].is_required()


def test_execution_settings_are_not_part_of_a_run():
    """eval_batch_size changes no number: two profiles that differ only there are the same runs."""
    base = spec.load("cub_cars", "smoke", components=False)
    assert base.runs[0].execution.eval_batch_size == 12
    assert "batch_size" not in base.runs[0].config_dict()["eval"]
    # Records written when the eval batch size was part of the config keep their run ids.
    # Records written when the eval batch size was part of the config (always 128) keep their run ids.
    record = json.loads(committed_records()[0].read_text())
    assert "batch_size" not in record["config"]["eval"]
    for old_value in (128, 7):
        written_then = {**record["config"], "eval": {**record["config"]["eval"], "batch_size": old_value}}
        assert identity.run_id(written_then) == record["run_id"]


def test_defaults_file_holds_no_schema_default():
    """experiments/defaults.yaml holds base choices only; an option's default lives in the schema alone."""
    defaults = spec.read_yaml(spec.EXPERIMENTS_DIR / spec.DEFAULTS_FILE)
    models = {"data": schema.DataConfig, "train": schema.TrainConfig, "eval": schema.EvalConfig}
    for section, model in models.items():
        for key in defaults.get(section, {}):
            assert model.model_fields[key].is_required(), \
                f"defaults.yaml sets {section}.{key}, which has a default in harness/schema.py: keep one of them"
