"""paper/ -> paper/build/main.pdf with latexmk, refusing to build when a file the chapters include is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError
from harness.prose import uncommented

LATEX_PACKAGES = "latexmk texlive-latex-recommended texlive-fonts-recommended lmodern"
GENERATED = "generated"

_GENERATED = re.compile(r"\\generated\{([^}#]+)\}\{([^}#]+)\}")  # main.tex's macro: generated/<study>/<name>.tex
_INPUT = re.compile(r"\\(?:input|include)\{([^}#]+)\}")
_STUDY_CHAPTER = re.compile(r"\\studychapter\{([^}#]+)\}")  # chapters/<study>.tex, else generated/<study>/chapter
_GRAPHICS = re.compile(r"\\includegraphics(?:\[[^\]]*\])?\{([^}#]+)\}")


def compile_pdf(paper: Path, quiet: bool = True) -> Path | None:
    """latexmk -> paper/build/main.pdf; None (with one line saying what to install) when LaTeX is absent."""
    check_includes(paper)
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        print(f"LaTeX not found: tables and figures are in {paper / GENERATED}; to build the PDF install "
              f"{LATEX_PACKAGES} (Debian/Ubuntu package names) and run `make figures`")
        return None
    # -g: latexmk tracks only the files the last build read, so a file that \IfFileExists skipped then and
    # exists now (another profile or study set rendered since) would not trigger a rebuild; always build.
    cmd = ["latexmk", "-g", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-outdir=build", "main.tex"]
    done = subprocess.run(cmd, cwd=paper, capture_output=quiet, text=True)
    if done.returncode != 0:
        log = paper / "build" / "main.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        errors = [line for line in tail if line.startswith("!")] or tail[-3:]
        raise HarnessError(f"latexmk failed in {paper}: {' | '.join(errors) or done.stderr[-300:]}")
    check_layout(paper / "build" / "main.log")
    check_references(paper / "build" / "main.log", paper)
    return paper / "build" / "main.pdf"


def check_references(log: Path, paper: Path) -> None:
    """A PDF that prints "Table ??" is not built: one line naming the first undefined reference or citation.
    A reference into a study that was not rendered (tab:<study>:..., no generated/<study>/) is expected: its
    chapter says it was not rendered."""
    if not log.exists():
        return
    text = log.read_text(errors="replace")
    found = [(label, page) for label, page in
             re.findall(r"LaTeX Warning: (?:Reference|Citation) `([^']+)' on page (\d+) undefined", text)
             if defined_by_a_render(paper, label)]
    if found:
        label, page = found[-1]
        raise HarnessError(f"{log}: '{label}' (page {page}) is undefined after the last LaTeX pass, so the PDF "
                           f"would print '??'{f' ({len(found)} in all)' if len(found) > 1 else ''}; render the "
                           "study that defines it, or remove the reference")


OVERFULL_LIMIT_PT = 1.0  # TeX's own \hfuzz is 0.1 pt; a line this much wider is visibly in the margin


def source_at(lines: list[str], index: int) -> str | None:
    """The file TeX was reading at log line `index`: the last `(./path.tex` it opened before (a heuristic: TeX
    prints "(file" when it opens one; closing parentheses are too often split across lines to track)."""
    opened = re.findall(r"\((?:\./)?([^\s()]+\.tex)", "\n".join(lines[:index]))
    return opened[-1] if opened else None


def source_words(source: str | None) -> str:
    """'generated/supcon/setup.tex (study supcon, written by harness render)', or the hand-written file."""
    if source is None:
        return "in the document"
    parts = source.split("/")
    if parts[0] == GENERATED and len(parts) == 3:
        return f"in {source} (study {parts[1]}, written by `harness render` from its study file and records)"
    return f"in {source}"


def check_layout(log: Path) -> None:
    """One line naming the first line of text that runs into the margin by more than OVERFULL_LIMIT_PT (a table,
    a long name), the file it is in (and its study, for a generated one) and the text TeX shows for it; the PDF is
    built, but a build with such a line fails."""
    if not log.exists():
        return
    lines = log.read_text(errors="replace").splitlines()
    small = [i for i, line in enumerate(lines) if line.startswith("harness: a table printed below 8 pt")]
    if small:
        raise HarnessError(f"{log}: {lines[small[0]].removeprefix('harness: ')}, "
                           f"{source_words(source_at(lines, small[0]))}, longer than the page even sideways; "
                           "split the table (fewer columns, or a `where` per table) so its text stays at 8 pt")
    found = []
    for i, line in enumerate(lines):
        match = re.match(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\) (.*)", line)
        if match and float(match.group(1)) > OVERFULL_LIMIT_PT:
            found.append((float(match.group(1)), match.group(2), " ".join(lines[i + 1:i + 3]).strip()[:120],
                          source_at(lines, i)))
    if found:
        width, where, text, source = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise HarnessError(f"{log}: a line runs {width:.1f} pt into the margin {source_words(source)}, {where}: "
                           f"{text!r}{more}; shorten or allow a break there (tables are scaled to the text width "
                           "by their template)")


def check_includes(paper: Path) -> None:
    """One line naming the first missing file, so a PDF never silently lacks a table or figure."""
    missing = list(missing_includes(paper))
    if missing:
        source, target = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        study = target.split("/")[1]
        raise HarnessError(f"{source} includes {target}, which is missing{more} (in {paper}); run `harness render "
                           f"--studies {study}` with the profile you mean")


def missing_includes(paper: Path) -> Iterator[tuple[str, str]]:
    """(including file, missing file) pairs, paths relative to `paper`, for the files under generated/ that
    main.tex and the files it inputs include.

    A `\\generated{study}{name}` may be absent only where its study was not rendered at all (no folder: the
    chapter says so) or has no records (missing.tex stands in); a rendered study has a file for every report
    item, so any other absence is a half-finished render or a chapter naming an item its study does not have.
    """
    seen: set[Path] = set()
    pending = [paper / "main.tex"]
    while pending:
        source = pending.pop(0)
        if source in seen or not source.is_file():
            continue
        seen.add(source)
        for target, optional in includes(source.read_text(errors="replace")):
            if hand_written_instead(paper, target):
                continue  # \studychapter inputs the hand-written chapter; the generated one is not read
            if present(paper / target):
                if target.endswith(".tex"):
                    pending.append(paper / target)
            elif required(paper, target, optional):
                yield source.relative_to(paper).as_posix(), target


def defined_by_a_render(paper: Path, label: str) -> bool:
    """Whether a label should exist after the renders done so far: tab:<study>:<item> once its study was
    rendered, tab:<name> (the verdicts, compute and artifact tables) once generated/<name>.tex was written; any
    other label (a chapter's, a citation) always."""
    parts = label.split(":")
    if parts[0] in ("tab", "fig") and len(parts) == 3:  # a study without records has missing.tex instead
        folder = paper / GENERATED / parts[1]
        return folder.is_dir() and not (folder / "missing.tex").exists()
    if parts[0] in ("tab", "fig") and len(parts) == 2:
        return (paper / GENERATED / f"{parts[1]}.tex").is_file()
    return True


def hand_written_instead(paper: Path, target: str) -> bool:
    """Whether `target` is a study's generated chapter that a hand-written chapters/<study>.tex replaces."""
    parts = target.split("/")
    return (len(parts) == 3 and parts[0] == GENERATED and parts[2] == "chapter.tex"
            and (paper / "chapters" / f"{parts[1]}.tex").is_file())


def includes(text: str) -> Iterator[tuple[str, bool]]:
    """(path relative to paper/, whether LaTeX includes it only if present) for each include in a TeX source."""
    text = uncommented(text)
    for study, name in _GENERATED.findall(text):
        yield f"{GENERATED}/{study}/{name}.tex", True
    for study in _STUDY_CHAPTER.findall(text):
        yield f"chapters/{study}.tex", True
        yield f"{GENERATED}/{study}/chapter.tex", True
    for target in _INPUT.findall(text):
        yield (target if target.endswith(".tex") else f"{target}.tex"), False
    for target in _GRAPHICS.findall(text):
        yield target, False


def present(path: Path) -> bool:
    """Whether LaTeX finds the file; a graphic named without extension may be any of its kinds."""
    return path.is_file() or (not path.suffix and any(path.parent.glob(f"{path.name}.*")))


def required(paper: Path, target: str, optional: bool) -> bool:
    """Whether a missing include is an error. Files outside generated/ are LaTeX's to report (a chapter is
    source, not output); an optional one is required once its study has been rendered from records."""
    if not target.startswith(f"{GENERATED}/"):
        return False
    if target.count("/") == 1:  # a file of the whole render (the verdicts): its chapter has a stand-in
        return False
    if not optional:
        return True
    folder = (paper / target).parent
    return folder.is_dir() and not (folder / "missing.tex").exists()
