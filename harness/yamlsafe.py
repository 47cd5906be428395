"""YAML read within limits (study files and --set values): no alias bomb, no recursion, no nesting past a depth,
no number too long to convert; each problem one ConfigError naming where it is."""

from __future__ import annotations

from typing import Any

import yaml

from harness.errors import ConfigError

MAX_YAML_DEPTH = 50
MAX_YAML_NODES = 200_000


def load(text: str, where: str) -> Any:
    """The document in `text` (None when empty); `where` names it in errors (a file, `--set key=...`)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(where, node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}:{at}: YAML syntax error: {problem}") from None
    except RecursionError:  # PyYAML composes recursively: a list nested thousands deep ends here
        raise ConfigError(f"{where}: nested more than {MAX_YAML_DEPTH} levels deep") from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise ConfigError(f"{where}: {str(exc).split(';')[0]}") from None
    finally:
        loader.dispose()


def _check_expansion(where: str, root: yaml.Node) -> None:
    """Refuse a document that aliases would blow up, that refers to itself, or that nests too deep."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{where}: line {node.start_mark.line + 1}: nested more than {MAX_YAML_DEPTH} levels "
                              "deep")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(f"{where}: line {node.start_mark.line + 1}: a YAML alias refers to a node that "
                              "contains it (a recursive alias)")
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v, depth + 1) for v in node.value)
        else:
            total = 1
        open_nodes.discard(key)
        if total > MAX_YAML_NODES:
            raise ConfigError(f"{where}: expands to more than {MAX_YAML_NODES} elements once its YAML aliases are "
                              "expanded; an experiment file is far smaller")
        sizes[key] = total
        return total

    size(root, 0)
