"""What chapter prose may not contain: a result number typed by hand (every result in the text is a macro that
`harness render` generates from the records)."""

from __future__ import annotations

import re


def hand_typed(text: str) -> list[str]:
    """Result numbers typed into prose: a percentage or a percentage-point figure, unless it is a confidence
    level (95 % interval). Settings (a margin of 0.5, 1e-3, 20 epochs) are not results and pass."""
    return [found for _, found in hand_typed_at(text)]


def hand_typed_at(text: str) -> list[tuple[int, str]]:
    """hand_typed with each number's offset in `text`."""
    found = []
    for match in re.finditer(r"(?<![\w.{])(\d+(?:\.\d+)?)\s*(?:\\,|~|\s)?(?:\\%|percent\b|pp\b|points?\b)", text):
        after = text[match.end():match.end() + 40]
        if re.match(r"\s*(?:\$?t\$?-)?(?:\{\\em\s*)?(?:confidence|interval|\$t\$-interval|t-interval)", after) \
                and match.group(1) in ("90", "95", "99"):
            continue
        found.append((match.start(), match.group(0).strip()))
    return found
