"""LaTeX text: the Jinja2 environment of paper/templates/ and escaping of what goes into it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from harness.catalog import dataset_name
from harness.render.axes import label_text, metric_name

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: Any) -> str:
    """Any label or caption as LaTeX text (an axis label as the YAML wrote it: 2, not 2.0)."""
    # "--" would print as an en-dash, and a command copied from the PDF (--profile) would then fail.
    return re.sub(r"-(?=-)", "-{}", "".join(_SPECIAL.get(ch, ch) for ch in label_text(text)))


# A name in a source or a note that the reader would type or look up as it is spelt (a file, a repository, a
# snake_case key): set in code font, where LaTeX also breaks it at / and . instead of running into the margin.
_NAME = re.compile(r"[\w.-]*(?:_[\w.-]*|\w/[\w.-]*[A-Za-z]{2}[\w.-]*|\.(?:csv|ipynb|py|yaml|json|txt|md|tex)\b)"
                   r"[\w./-]*")


def words_tex(text: Any) -> str:
    """Free text (a source, a note) as LaTeX: its file, repository and key names in code font, the rest escaped."""
    out, at = [], 0
    text = label_text(text)
    for match in _NAME.finditer(text):
        name = match.group(0).rstrip(".")
        out += [latex_escape(text[at:match.start()]), rf"\nolinkurl{{{name}}}"]
        at = match.start() + len(name)
    return "".join(out) + latex_escape(text[at:])


def label_tex(label: Any) -> str:
    """An axis label: in code font when it is an identifier (snake_case, as the study file and `--where` spell
    it), else plain text (a number, a split such as 20-80)."""
    text = latex_escape(label)
    return rf"\texttt{{{text}}}" if "_" in label_text(label) else text


def environment(templates: Path) -> jinja2.Environment:
    """Jinja2 with LaTeX-looking delimiters, \\BLOCK{...}, \\VAR{...}, \\#{...}, so templates stay valid-looking TeX."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)), block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}", comment_start_string=r"\#{",
        comment_end_string="}", undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        autoescape=False, keep_trailing_newline=True)
    env.filters["tex"] = latex_escape
    env.filters["label"] = label_tex  # an axis label: identifiers in code font
    env.filters["words"] = words_tex  # free text that may name files or keys
    env.filters["metric"] = lambda name: latex_escape(metric_name(name))  # knn_accuracy -> kNN accuracy
    env.filters["dataset"] = lambda name: latex_escape(dataset_name(name))  # fashion_mnist -> Fashion-MNIST
    return env
