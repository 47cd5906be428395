"""Matrix expansion: a study's axes (one block, or a union of blocks) -> one config assignment per cell.

An axis is a list of values set at the config path named like the axis, or {path: config.path, values: [...]}
when the axis's short name (a table header, a figure label) differs from where its values go. A matrix is one
mapping of axes (their product) or a list of such blocks (the union of their products, e.g. a baseline without
the grid's axes next to the grid). Pure dict operations: nothing here validates a config.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from harness.catalog import BASELINE_AXIS, BASELINES
from harness.errors import ConfigError

AxisSpec = list[Any] | dict[str, Any]
MatrixSpec = dict[str, AxisSpec] | list[dict[str, AxisSpec]]
Block = dict[str, tuple[str, list[Any]]]  # axis -> (config path, values)
MISSING = object()


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override nested mappings key by key; anything else (lists, scalars, None) replaces.

    A component naming another `name` replaces the base one whole: the default model's arguments must not
    leak into a different model (defaults' embedding_dim 128 would add a layer to a network meant to end at
    its pooled features).
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        base_value = merged.get(key)
        other_component = (isinstance(value, Mapping) and isinstance(base_value, Mapping) and "name" in value
                           and "name" in base_value and value["name"] != base_value["name"])
        if isinstance(value, Mapping) and isinstance(base_value, Mapping) and not other_component:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"matrix.{path}: '{key}' is not a mapping in the config")
    node[leaf] = copy.deepcopy(value)


def get_path(config: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return MISSING
        node = node[key]
    return node


def cell(axis: str, value: Any, path: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(label, {config path: value}) for one axis value.

    A plain value (scalar or component mapping) is set at the axis's config path (its name unless given) and
    labelled by itself or its `name`. A mapping {label: ..., set: {path: value, ...}} sets several paths
    together (a loss with its miner); an empty `set` names the configuration as it is (the corrected protocol
    beside a variant that changes it) and leaves the run_id unchanged. On the axis `baseline`, a name from harness.catalog.BASELINES stands for
    what that baseline sets.
    """
    path = path or axis
    if axis == BASELINE_AXIS and not isinstance(value, Mapping):
        if value not in BASELINES:
            raise ConfigError(f"matrix.{axis}: unknown baseline {value!r}; known: {', '.join(BASELINES)} (or a "
                              "{label, set} value of your own)")
        return value, dict(BASELINES[value])
    if isinstance(value, Mapping) and "set" in value:
        if set(value) != {"label", "set"} or not isinstance(value["set"], Mapping):
            raise ConfigError(f"matrix.{axis}: a paired value has exactly 'label' and a 'set' mapping, "
                              f"got keys {sorted(value)}")
        label = value["label"]
        assignments = dict(value["set"])
    elif isinstance(value, Mapping):
        if "name" not in value:
            raise ConfigError(f"matrix.{axis}: mapping values need a 'name' to label them, got {dict(value)}")
        label, assignments = value["name"], {path: value}
    else:
        label, assignments = value, {path: value}
    if not isinstance(label, (str, int, float, bool)):
        raise ConfigError(f"matrix.{axis}: a label must be text or a number, got {type(label).__name__} {label!r}")
    return label, assignments


def _axis(axis: str, spec: Any) -> tuple[str, list[Any]]:
    if isinstance(spec, list):
        values, path = spec, axis
    elif isinstance(spec, Mapping) and set(spec) == {"path", "values"} and isinstance(spec["values"], list) \
            and isinstance(spec["path"], str):
        values, path = spec["values"], spec["path"]
    else:
        raise ConfigError(f"matrix.{axis}: an axis is a list of values or {{path: config.path, values: [...]}}")
    if not values:
        raise ConfigError(f"matrix.{axis}: empty axis (the matrix would have no runs)")
    return path, values


def blocks(study_matrix: Any, profile_matrix: Any) -> list[Block]:
    """The matrix as blocks of axes. A profile's list replaces the study's matrix; a profile's mapping replaces
    same-named axes in every block and adds axes found in none of them to every block."""
    def parse(block: Any) -> Block:
        if not isinstance(block, Mapping):
            raise ConfigError(f"matrix: a block is a mapping of axes, got {type(block).__name__}")
        return {str(axis): _axis(str(axis), spec) for axis, spec in block.items()}

    if isinstance(profile_matrix, list):
        return [parse(b) for b in profile_matrix]
    parsed = [parse(b) for b in (study_matrix if isinstance(study_matrix, list) else [study_matrix])]
    override = parse(profile_matrix)
    known = {axis for block in parsed for axis in block}
    for block in parsed:
        for axis, value in override.items():
            if axis in block or axis not in known:
                block[axis] = value
    return parsed


def baseline_block(matrix: list[Block], kinds: list[str], over: Sequence[str]) -> Block:
    """A block of baseline runs: each kind crossed with the `over` axes as the matrix defines them."""
    block: Block = {BASELINE_AXIS: (BASELINE_AXIS, list(kinds))}
    for axis in over:
        found = next((b[axis] for b in matrix if axis in b), None)
        if found is None:
            raise ConfigError(f"baselines.over: no matrix axis '{axis}' in this profile")
        block[axis] = found
    return block


def cells(matrix: list[Block]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(axis labels, {config path: value}) for every cell of every block, in declared order."""
    seen = set()
    for block in matrix:
        for combo in itertools.product(*(values for _, values in block.values())):
            axes, assignments = {}, {}
            for (axis, (axis_path, _)), value in zip(block.items(), combo):
                axes[axis], paths = cell(axis, value, axis_path)
                assignments.update(paths)
            key = tuple(sorted(axes.items(), key=lambda kv: kv[0]))
            if key in seen:
                raise ConfigError(f"matrix: two cells share the labels {dict(key)}; give them distinct labels")
            seen.add(key)
            yield axes, assignments


def axis_order(matrix: list[Block]) -> dict[str, list[Any]]:
    """Each axis's labels in declared order, over every block."""
    order: dict[str, list[Any]] = {}
    for block in matrix:
        for axis, (path, values) in block.items():
            for value in values:
                label = cell(axis, value, path)[0]
                if label not in order.setdefault(axis, []):
                    order[axis].append(label)
    return order


def resolve(base: Mapping[str, Any], assignments: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The base config with a cell's assignments and the seed applied."""
    resolved = copy.deepcopy(dict(base))
    # Whole components first, then paths inside them: {loss: {name: arcface}} before loss.m.
    for key, value in sorted(assignments.items(), key=lambda kv: kv[0].count(".")):
        set_path(resolved, key, value)
    resolved["seed"] = seed
    return resolved
