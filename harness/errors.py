"""User-facing errors: each one becomes a single line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A problem the user can fix (bad config, missing data, corrupt record). Exit code 2."""

    exit_code = 2


class ConfigError(HarnessError):
    """An experiment file that does not validate."""


class DataError(HarnessError):
    """A dataset that is missing, truncated or fails its checksum."""


class RecordError(HarnessError):
    """A run record that cannot be read or is not a finished run."""


def suggest(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def yaml_number_hint(value: object) -> str:
    """PyYAML reads 1e-3 (no dot) as text; say how to write it when a number was expected."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (YAML reads numbers like 1e-3 as text: write 1.0e-3)"
    return ""
