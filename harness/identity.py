"""A run's identity: the hash of its resolved config, stable across harness versions that add options."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Options added after the first records were written. At their schema default they are left out of the
# identity, so a new option never orphans existing records; set to anything else, they change the run_id.
# Their defaults must stay what the behaviour was before they existed (tests pin the committed run_ids).
ADDED_OPTIONS = (("data", "split"), ("data", "val_per_class"), ("data", "val_classes"), ("data", "image_size"), ("eval", "unseen_metrics"),
                 ("eval", "options"), ("eval", "classes"), ("train", "augment"), ("train", "sampler"),
                 ("train", "precision"), ("train", "channels_last"), ("train", "warmup_epochs"),
                 ("train", "lr_schedule"), ("train", "init"),
                 ("train", "optimize_loss"), ("eval", "knn_reference"), ("data", "permute_labels"),
                 ("train", "loss_lr_multiplier"), ("data", "val_fold"))
# Keys that were once part of the config, and so of the hash, and are now execution settings: the hash keeps
# the one value every earlier record was written with, so their run_ids stand.
FORMER_KEYS = {("eval", "batch_size"): 128}


def _schema_default(section: str, key: str) -> Any:
    from harness import schema

    model = {"data": schema.DataConfig, "eval": schema.EvalConfig, "train": schema.TrainConfig}[section]
    return model.model_fields[key].get_default(call_default_factory=True)


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that names a run: everything, less added options at their defaults."""
    out = copy.deepcopy(dict(config))
    for section, key in ADDED_OPTIONS:
        if section in out and key in out[section] and out[section][key] == _schema_default(section, key):
            del out[section][key]
    for (section, key), value in FORMER_KEYS.items():
        if isinstance(out.get(section), dict):
            out[section][key] = value
    return out


def run_id(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of a resolved config's identity (canonical JSON: sorted keys, no whitespace)."""
    canonical = json.dumps(identity(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
