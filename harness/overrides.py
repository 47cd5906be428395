"""Command-line overrides (`--set key=value`): parsed here, applied by harness.spec to every run's resolved config.

Precedence, lowest first: experiments/defaults.yaml, the study's `config:`, the profile's `config:`, the matrix
cell, then --set. One exception keeps a matrix a matrix: a run whose own cell sets the key (an axis that varies
it, a baseline's `train.epochs: 0`), or puts another component at the key's parent (the raw-input baseline's
model, a triplet loss where the study's loss is contrastive), keeps its cell's value. So `--set train.epochs=3`
shortens the trained runs without training the untrained baseline or merging the cells of an epoch-budget axis,
and `--set loss.neg_margin=0.3` changes every contrastive loss and leaves the triplet cells alone. An override
changes the resolved config, so the run_id; the record keeps the overrides in its provenance.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness import yamlsafe
from harness.errors import ConfigError

# Set by the matrix and the chains, never by hand: a seed is the `seeds:` list, train.init names a recorded parent.
RESERVED = {"seed": "seeds come from the study's `seeds:` list (one run per seed)",
            "train.init": "train.init is set by a study's `chains:` (it names the parent run's id)"}
# On the command line 1e-3 is a number (YAML 1.1, which PyYAML reads, wants 1.0e-3 and would give text).
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Override:
    key: str  # a dotted config path, e.g. train.epochs
    value: Any  # the value as YAML reads it
    text: str  # as typed, for error lines

    @property
    def path(self) -> list[str]:
        return self.key.split(".")


def parse(texts: Iterable[str] | None) -> tuple[Override, ...]:
    """`key=value` strings -> overrides; the value is read as YAML (3, 0.2, true, null, [1, 3], {name: x})."""
    found: dict[str, Override] = {}
    for text in texts or ():
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ConfigError(f"--set {text!r}: expected key=value with a dotted config key, e.g. "
                              "--set train.epochs=3 or --set loss.margin=0.2")
        if key in RESERVED:
            raise ConfigError(f"--set {text}: {key} cannot be overridden; {RESERVED[key]}")
        try:  # within the limits a study file is read with: an alias bomb or a recursive alias is one line
            value = yamlsafe.load(raw, "the value") if raw.strip() else None
        except ConfigError as exc:
            shown = text.replace("\n", "\\n")  # one line, whatever the value holds
            shown = shown if len(shown) <= 80 else f"{shown[:60]}... ({len(text)} characters)"
            hint = ("; quote lists for the shell, e.g. --set 'train.eval_epochs=[1, 3]'"
                    if "syntax error" in str(exc) else "")
            raise ConfigError(f"--set {shown}: {exc}{hint}") from None
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            value = float(value)
        for inner in _paths(key, value):  # `--set 'train={init: ...}'` reaches train.init as surely as its key
            if inner in RESERVED:
                raise ConfigError(f"--set {key}=...: sets {inner}, which cannot be overridden; {RESERVED[inner]}")
        if key in found:
            raise ConfigError(f"--set {key} given twice ({found[key].text} and {text}); give it once")
        if any(key.startswith(other + ".") or other.startswith(key + ".") for other in found):
            other = next(o for o in found if key.startswith(o + ".") or o.startswith(key + "."))
            raise ConfigError(f"--set {text}: overlaps --set {found[other].text}; set one of {other} and {key}")
        found[key] = Override(key, value, text)
    return tuple(found.values())


def _paths(key: str, value: Any) -> list[str]:
    """Every dotted key a value set at `key` reaches (a mapping's keys, nested)."""
    if not isinstance(value, Mapping):
        return []
    found = []
    for inner, item in value.items():
        path = f"{key}.{inner}"
        found += [path, *_paths(path, item)]
    return found


def _name(value: Any) -> Any:
    return value.get("name") if isinstance(value, Mapping) else None


def _set_by_cell(key: str, cell: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """Whether a matrix cell owns this key: it sets the key or a key inside it, or it sets a parent of the key to
    something other than the base config's component of the same name there."""
    for path, value in cell.items():
        if path == key or path.startswith(key + "."):
            return True
        if key.startswith(path + "."):
            node: Any = base
            for part in path.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            if _name(value) is None or _name(value) != _name(node):
                return True
    return False


def apply(resolved: dict[str, Any], overrides: tuple[Override, ...], cell: Mapping[str, Any],
          base: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides this run takes ({key: value}), written into `resolved` in place.

    `--set train.epochs=N` without `--set train.eval_epochs` also cuts the run's evaluation schedule to the epochs
    below N, then N (a study evaluating after 1, 2, 5 and 10 epochs, with --set train.epochs=3: after 1, 2, 3):
    the last evaluation must be the last epoch, and that is what such an override means.
    """
    applied: dict[str, Any] = {}
    keys = {o.key for o in overrides}
    for override in overrides:
        if _set_by_cell(override.key, cell, base):
            continue
        node = resolved
        for depth, part in enumerate(override.path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, Mapping):
                where = ".".join(override.path[:depth + 1])
                raise ConfigError(f"--set {override.text}: {where} is {child!r} in this study, not a mapping with "
                                  "keys")
            node = child
        node[override.path[-1]] = copy.deepcopy(override.value)
        applied[override.key] = copy.deepcopy(override.value)
    epochs = applied.get("train.epochs")
    train = resolved.get("train")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and "train.eval_epochs" not in keys \
            and isinstance(train, dict) and isinstance(train.get("eval_epochs"), list) \
            and not _set_by_cell("train.eval_epochs", cell, base):
        schedule = [e for e in train["eval_epochs"] if isinstance(e, int) and e < epochs] + [epochs]
        train["eval_epochs"] = schedule
        applied["train.eval_epochs"] = list(schedule)
    return applied


def origin(overrides: tuple[Override, ...], loc: Iterable[str]) -> Override | None:
    """The override that set the config key an error is about (a key inside it, or one containing it)."""
    key = ".".join(str(p) for p in loc)
    for override in overrides:
        if key == override.key or key.startswith(override.key + ".") or override.key.startswith(key + "."):
            return override
    if key == "train.eval_epochs":  # cut by --set train.epochs (see apply)
        return next((o for o in overrides if o.key == "train.epochs"), None)
    return None


def add_argument(parser: Any) -> None:
    """`--set KEY=VALUE` on a command (an argparse parser)."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key of every run (a YAML value: --set train.epochs=3 --set "
                             "loss.neg_margin=0.2); a new run_id, recorded in provenance; a matrix axis keeps its "
                             "own values (README: Overrides)")
