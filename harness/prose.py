"""What chapter prose may not contain: a result number typed by hand (every result in the text is a macro that
`harness render` generates from the records), and a config key or internal name outside code font (the reader
gets words; a name to type is set as code)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


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


# What the reader sees in code font (a command, an item name to type, a file, a label as the study file spells it)
# or never sees (references, file inputs, macro names), with how many of a command's brace arguments are such
# names (\claimval{study}{claim}{field}); the rest of the text is prose.
_CODE_ARGS = {"discusses": 1, "texttt": 1, "nolinkurl": 1, "url": 1, "path": 1, "label": 1, "ref": 1,
              "autoref": 1, "pageref": 1, "cite": 1, "citep": 1, "citet": 1, "input": 1, "include": 1,
              "includegraphics": 1, "generated": 2, "studychapter": 1, "IfFileExists": 1, "hyperref": 0, "href": 1,
              "bibliography": 1, "bibliographystyle": 1, "claimval": 3, "verdict": 2, "unadjusted": 2, "verb": 0}
_COMMAND = re.compile(r"\\([A-Za-z]+)\*?(?:\[[^\]]*\])?")
_MACRO_NAME = re.compile(r"\\csname.*?\\endcsname")
_VERBATIM = re.compile(r"\\begin\{(verbatim|lstlisting)\}.*?\\end\{\1\}", re.S)
_COMMENT = re.compile(r"(?<!\\)%.*")
# snake_case as LaTeX source spells it (an escaped underscore) and dotted config keys (eval.options.n_way);
# abbreviations (e.g., i.e., s.d.) are not keys: a key has a part of two letters or more after its first dot.
_SNAKE = re.compile(r"(?<![\\\w])[A-Za-z][A-Za-z0-9]*(?:\\_[A-Za-z0-9]+)+")
_DOTTED = re.compile(r"(?<![\\\w.])[a-z][a-z0-9]*(?:\\_[a-z0-9]+)*"
                     r"(?:\.(?=[a-z0-9\\_]{2})[a-z][a-z0-9]*(?:\\_[a-z0-9]+)*)+(?![\w{])")


def uncommented(tex: str) -> str:
    """A LaTeX source with every comment (a % not after a backslash, to the line's end) blanked, so that offsets
    and line numbers still hold."""
    return _COMMENT.sub(lambda m: " " * len(m.group(0)), tex)


def prose_only(tex: str) -> str:
    """`tex` with everything that is not prose blanked (comments, code-font and reference arguments at any depth,
    macro names), so that offsets and line numbers still hold."""
    text = uncommented(tex)
    for pattern in (_VERBATIM, _MACRO_NAME):
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    chars = list(text)
    stack: list[bool] = []  # per open brace: whether its content is code
    pending, depth = 0, 0  # brace arguments still to come of the last code command, and the depth it stands at
    i = 0
    while i < len(text):
        command = _COMMAND.match(text, i)
        if command:
            if len(stack) <= depth or not pending:
                pending, depth = _CODE_ARGS.get(command.group(1), 0), len(stack)
            i = command.end()
            continue
        ch, inside = text[i], bool(stack) and stack[-1]
        if ch == "\\":  # an escaped character (\_, \{, \%) belongs to whatever holds it
            if inside:
                chars[i:i + 2] = "  "
            i += 2
            continue
        if ch == "{":
            opens_argument = pending > 0 and len(stack) == depth
            stack.append(inside or opens_argument)
            pending -= opens_argument
        elif ch == "}":
            if stack:
                stack.pop()
            if len(stack) == depth and not text.startswith("{", i + 1):
                pending = 0
        elif not ch.isspace() and len(stack) == depth:
            pending = 0
        if inside and ch != "\n":
            chars[i] = " "
        i += 1
    return "".join(chars)


def jargon_at(tex: str) -> list[tuple[int, str]]:
    """Config keys and internal names (snake_case, dotted keys) that a LaTeX source shows outside code font,
    with their offsets in `tex`."""
    text = prose_only(tex)
    dotted = [(m.start(), m.end(), m.group(0)) for m in _DOTTED.finditer(text)]
    snake = [(m.start(), m.end(), m.group(0)) for m in _SNAKE.finditer(text)
             if not any(start <= m.start() < end for start, end, _ in dotted)]  # a part of a dotted key
    return sorted((start, word) for start, _, word in dotted + snake)


FILE_SUFFIXES = ("pdf", "tex", "json", "yaml", "csv", "py", "ipynb", "md", "txt")


def jargon_in_text(text: str) -> list[str]:
    """The same in plain text (a figure's words, where nothing is code font). A path or file name (next to a /
    or <>, or ending in a file suffix) is a name to look up, not jargon."""
    found = re.findall(r"(?<![\w/<.])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/>.])"
                       r"|(?<![\w/<.])[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]+)+(?![\w/>(])", text)
    return [word for word in found if word.rsplit(".", 1)[-1] not in FILE_SUFFIXES]


def jargon_problems(paper: Path) -> list[str]:
    """Config keys and internal names the reader would see: in main.tex, the hand-written chapters and the files
    the last `harness render` generated (outside code font), and in the generated figures' words (read with
    pdftotext where it is installed). One line each, with file and line, saying how to mend it."""
    problems = []
    sources = [paper / "main.tex", *sorted((paper / "chapters").glob("*.tex")),
               *sorted((paper / "generated").rglob("*.tex"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for offset, found in jargon_at(text):
            where = f"{path}:{text.count(chr(10), 0, offset) + 1}"
            if "generated" in path.parts:
                problems.append(f"{where}: '{found}' reaches the reader as a key; the renderer should name it in "
                                "words or set it in code font (its template under paper/templates/), then render")
            else:
                problems.append(f"{where}: '{found}' is a key, not a word: say it in words, or set a name the "
                                "reader types in code font (\\texttt{...})")
    figures = sorted((paper / "generated").rglob("*.pdf"))
    if figures and shutil.which("pdftotext") is None:
        print("note: the figures' words were not read for keys: pdftotext is not installed (apt-get install "
              "poppler-utils)")
        return problems
    for path in figures:
        words = subprocess.run(["pdftotext", "-q", str(path), "-"], capture_output=True, text=True).stdout
        for found in dict.fromkeys(jargon_in_text(" ".join(words.split()))):
            problems.append(f"{path}: the figure shows '{found}', a key; name it in words where the figure is "
                            "drawn (harness/render/figures.py), then render")
    return problems


# \verdict{study}{claim}{word} in a hand-written chapter: prose that rests on a verdict states it through this
# macro (main.tex prints the word), and `harness check` fails when the profile's records give another.
_VERDICT = re.compile(r"\\(verdict|unadjusted)\{([^{}]+)\}\{([^{}]+)\}\{([^{}]+)\}")
VERDICT_WORDS = ("not reproduced", "reproduced", "inconsistent", "consistent", "inconclusive", "supported",
                 "contradicted", "not testable here")


def stated_verdicts(tex: str) -> list[tuple[int, str, str, str, bool]]:
    """(offset, study, claim, word, adjusted) of every \\verdict (Holm-adjusted, as the Findings give it) and
    \\unadjusted (the verdict before the family's adjustment) in a LaTeX source, comments left out."""
    return [(m.start(), m.group(2).replace("\\_", "_"), m.group(3).replace("\\_", "_"), m.group(4),
             m.group(1) == "verdict") for m in _VERDICT.finditer(uncommented(tex))]


def unmarked_verdicts(tex: str) -> list[tuple[int, str]]:
    """Verdict words that a sentence gives a particular result without \\verdict: the sentence names a profile's
    records ("quick") or a claim (\\nolinkurl{study/claim}). A sentence on verdicts in general passes."""
    text = _VERDICT.sub(lambda m: " " * len(m.group(0)), uncommented(tex))
    text = re.sub(r"\\discusses\{[^{}]*\}", lambda m: " " * len(m.group(0)), text)
    found = []
    for sentence in re.finditer(r"[^.!?]+(?:[.!?](?=\s|$)|$)", text, re.S):
        body = sentence.group(0)
        if not re.search(r"\bquick\b|\\nolinkurl\{[a-z0-9_]+/", body):
            continue
        for word in re.finditer(r"\b(?:" + "|".join(VERDICT_WORDS) + r")\b", body):
            found.append((sentence.start() + word.start(), word.group(0)))
    return found


def discussed_profile(tex: str) -> str | None:
    """The profile a hand-written chapter's prose discusses (\\discusses{quick}), None where it names none."""
    found = re.search(r"\\discusses\{([^{}]+)\}", uncommented(tex))
    return found.group(1) if found else None


def chapter_verdict_problems(paper: Path, given: dict[tuple[str, str], tuple[str, str]], profile: str) -> list[str]:
    """The hand-written chapters that discuss `profile` (or name none) against the verdicts its records give
    (`given`: (study, claim) -> (verdict, unadjusted verdict); a claim missing there is not computable from these
    records and is not compared)."""
    problems = []
    for path in sorted((paper / "chapters").glob("*.tex")):
        tex = path.read_text(errors="replace")
        if discussed_profile(tex) not in (None, profile):
            continue  # prose about another profile's records: rendered from this one, the chapter says so

        def line(offset: int) -> str:
            return f"{path}:{tex.count(chr(10), 0, offset) + 1}"

        for offset, study, claim, word, adjusted in stated_verdicts(tex):
            if (study, claim) not in given and not any(s == study for s, _ in given):
                continue  # a study without records in this profile: nothing to hold the prose to
            if (study, claim) not in given:
                problems.append(f"{line(offset)}: \\verdict names {study}/{claim}, which is not a claim of its study")
                continue
            records = given[(study, claim)][0 if adjusted else 1]
            if records != word:
                problems.append(f"{line(offset)}: says {study}/{claim} is '{word}'"
                                + ("" if adjusted else " before the Holm adjustment")
                                + f"; the records give '{records}': revise the prose that rests on it")
        for offset, word in unmarked_verdicts(tex):
            problems.append(f"{line(offset)}: '{word}' states a result's verdict in plain text; write "
                            "\\verdict{<study>}{<claim>}{" + word + "} so that `harness check` holds it to the records")
    return problems
