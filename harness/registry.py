"""Name -> factory tables: the only way code picks a dataset, model, loss, miner or metric by name.

A registry holds factories or "module:attribute" strings; a string is imported on first use, so the names (and
every check that needs only names) are known without importing torch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from harness.errors import ConfigError, suggest, yaml_number_hint

T = TypeVar("T")

# Constructor arguments that take Python objects or are supplied by the harness, never by a YAML file.
_NOT_CONFIGURABLE = {"self", "args", "kwargs", "collect_stats", "embedding_regularizer", "weight_regularizer",
                     "weight_init_func", "mat_based_loss", "input_shape"}


def constructor_args(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Named arguments a factory accepts, gathered along a class's bases (PML passes **kwargs upwards)."""
    owners = [factory] if not isinstance(factory, type) else [
        k for k in factory.__mro__ if k.__module__.split(".")[0] not in ("torch", "builtins")]
    # A class can declare that its own arguments are all it takes (a wrapper renaming its base's arguments).
    if isinstance(factory, type) and factory.__dict__.get("own_args_only"):
        owners = [factory]
    args: dict[str, inspect.Parameter] = {}
    for owner in owners:
        if isinstance(owner, type) and "__init__" not in owner.__dict__:
            continue
        for name, param in inspect.signature(owner.__init__ if isinstance(owner, type) else owner).parameters.items():
            if name not in _NOT_CONFIGURABLE and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                args.setdefault(name, param)
    return args


def arguments(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A component spec's constructor arguments: everything but its `name`."""
    return {k: v for k, v in spec.items() if k != "name"}


@functools.cache
def installed_packages() -> frozenset[str]:
    """Top-level import names of the distributions installed in this environment (this project's included)."""
    return frozenset(importlib.metadata.packages_distributions()) | {"harness"}


class Registry(Generic[T]):
    """A dict of named factories whose misses list the known names and suggest the nearest one."""

    def __init__(self, kind: str, items: Mapping[str, T | str] | None = None, *,
                 import_paths: str | None = None) -> None:
        """`import_paths`: a "module:Class" base class; a name with a dot that is not registered is then an
        import path (pytorch_metric_learning.losses.SupConLoss) to a subclass of it, checked like a registered
        one, so a component of an installed package needs no edit here."""
        self.kind = kind
        self._items: dict[str, T | str] = {}
        self._imported: dict[str, T] = {}
        self.import_base = import_paths
        self.register_all(items or {})

    def is_import_path(self, name: str) -> bool:
        return self.import_base is not None and name not in self._items and "." in name

    def imported(self, name: str) -> T:
        """The class an import path names; a ConfigError in one line when it cannot be imported or is not a
        subclass of the registry's base."""
        if name in self._imported:
            return self._imported[name]
        module, _, attribute = name.rpartition(".")
        top = module.partition(".")[0]
        if top not in installed_packages():
            # Importing runs a module's code: only installed packages (and this project) are imported, never a
            # file that happens to sit in the working folder or beside a study, nor the standard library.
            raise ConfigError(f"{self.kind} '{name}': '{top}' is not an installed package; a component named by "
                              "import path must come from one (pip install it), e.g. "
                              "pytorch_metric_learning.losses.SupConLoss")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"{self.kind} '{name}': cannot import it ({type(exc).__name__}: {exc}); give a "
                              f"registered name ({', '.join(sorted(self._items))}) or the import path of an "
                              "installed class, e.g. pytorch_metric_learning.losses.SupConLoss") from None
        base_module, _, base_name = (self.import_base or "").partition(":")
        base = getattr(importlib.import_module(base_module), base_name)
        if not (isinstance(found, type) and issubclass(found, base)):
            raise ConfigError(f"{self.kind} '{name}' is not a class derived from {base_module}.{base_name}")
        self._imported[name] = found
        return found

    def register(self, name: str, item: T | str) -> T | str:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._items[name] = item
        return item

    def register_all(self, items: Mapping[str, T | str]) -> None:
        for name, item in items.items():
            self.register(name, item)

    def get(self, name: str) -> T:
        if self.is_import_path(name):
            return self.imported(name)
        try:
            item = self._items[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None
        if isinstance(item, str):  # "module:attribute", imported once
            module, _, attribute = item.partition(":")
            item = self._items[name] = getattr(importlib.import_module(module), attribute)
        return item  # type: ignore[return-value]

    def build(self, spec: Mapping[str, Any], *args: Any, **context: Any) -> Any:
        """The factory named by spec['name'] called with `args`, the spec's arguments and `context`."""
        return self.get(spec["name"])(*args, **arguments(spec), **context)

    def unknown(self, name: str) -> str:
        return f"unknown {self.kind} '{name}'{suggest(name, self._items)}; known: {', '.join(sorted(self._items))}"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def check_name(self, spec: Any, where: str) -> None:
        """Raise ConfigError unless `spec` is {name: <a registered name>, ...} (no import needed)."""
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError(f"{where}: expected a mapping with a 'name' key, got {spec!r}")
        if isinstance(spec["name"], str) and self.is_import_path(spec["name"]):
            try:
                self.imported(spec["name"])
            except ConfigError as exc:
                raise ConfigError(f"{where}.name: {exc}") from None
            return
        if not isinstance(spec["name"], str) or spec["name"] not in self:
            raise ConfigError(f"{where}.name: {self.unknown(str(spec['name']))}")

    def check(self, spec: Any, where: str, nested: Mapping[str, "Registry[Any]"] | None = None) -> None:
        """Raise ConfigError naming `where` unless `spec` = {name: ..., arg: value, ...} would build.

        Arguments are checked against the factory's signature: unknown names get the nearest suggestion,
        values of the wrong kind (text for a number, a number for a flag) are refused. Keys listed in
        `nested` hold components of their own (a loss's distance) and are checked recursively.
        """
        nested = nested or {}
        self.check_name(spec, where)
        allowed = constructor_args(self.get(spec["name"]))
        for key, value in spec.items():
            if key == "name":
                continue
            if key not in allowed:
                raise ConfigError(f"{where}: unknown argument '{key}' for {self.kind} '{spec['name']}'"
                                  f"{suggest(key, allowed)}; allowed: {', '.join(sorted(allowed))}")
            if key in nested:
                if value is not None:
                    nested[key].check(value, f"{where}.{key}", nested)
                continue
            default = allowed[key].default
            number = isinstance(default, (int, float)) and not isinstance(default, bool)
            if value is None and number:
                raise ConfigError(f"{where}.{key}: null where {self.kind} '{spec['name']}' takes a number like "
                                  f"{default!r}; give a number, or leave the key out for its default")
            if default is inspect.Parameter.empty or default is None or value is None:
                continue
            wrong_flag = isinstance(default, bool) != isinstance(value, bool)
            wrong_number = isinstance(default, (int, float)) and not isinstance(value, (int, float))
            if wrong_flag or wrong_number:
                raise ConfigError(f"{where}.{key}: expected {type(default).__name__} like {default!r}, "
                                  f"got {type(value).__name__} {value!r}{yaml_number_hint(value)}")
