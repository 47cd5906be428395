"""LaTeX text: the Jinja2 environment of paper/templates/ and escaping of what goes into it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from harness.render.axes import label_text

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: Any) -> str:
    """Any label or caption as LaTeX text (an axis label as the YAML wrote it: 2, not 2.0)."""
    # "--" would print as an en-dash, and a command copied from the PDF (--profile) would then fail.
    return re.sub(r"-(?=-)", "-{}", "".join(_SPECIAL.get(ch, ch) for ch in label_text(text)))


def environment(templates: Path) -> jinja2.Environment:
    """Jinja2 with LaTeX-looking delimiters, \\BLOCK{...}, \\VAR{...}, \\#{...}, so templates stay valid-looking TeX."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)), block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}", comment_start_string=r"\#{",
        comment_end_string="}", undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        autoescape=False, keep_trailing_newline=True)
    env.filters["tex"] = latex_escape
    return env
