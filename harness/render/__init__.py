"""Records -> paper/generated/ -> PDF: Jinja2 LaTeX tables, seaborn figures, latexmk. Reads results/ only.

Importing this package is cheap (the study loader needs its report schema); the work is in its modules:
`schema` (the `report:` section), `tables` and `figures` (what a table or figure shows, as pure functions of a
results frame and a spec), `baselines` (runs on the reserved axis `baseline`: their names, rows, lines and caption
words), `axes` (labels and their order), `facts` (the setup paragraph), `latex` (templates),
`chapter` (one study's files, swapped in whole) and `pdf` (latexmk); `render`/`compile_pdf` below call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PAPER_DIR = Path(__file__).resolve().parent.parent.parent / "paper"


def render(studies: Sequence[str], profile: str, results: Path, paper: Path = PAPER_DIR) -> list[Path]:
    """Write every study's generated files; a study with no records gets a note saying how to produce them."""
    from harness.render import chapter

    return chapter.render(studies, profile, results, paper)


def compile_pdf(paper: Path = PAPER_DIR, quiet: bool = True) -> Path | None:
    """latexmk -> paper/build/main.pdf; None (with one line saying what to install) when LaTeX is absent; a
    HarnessError naming the file when one that a chapter includes from generated/ is missing."""
    from harness.render import pdf

    return pdf.compile_pdf(paper, quiet)


# What a paper folder needs besides what `render` writes: the document, its chapters, templates and bibliography.
SKELETON = ("main.tex", "references.bib", "chapters", "templates")


def prepare(paper: Path) -> list[str]:
    """Give a paper folder what it lacks of the project's skeleton (copied from paper/), so `render --paper DIR`
    works on an empty or partial folder; what is there already (an edited chapter) is kept. Returns what it
    copied."""
    import shutil

    from harness.errors import HarnessError

    if paper.exists() and not paper.is_dir():
        raise HarnessError(f"--paper {paper}: not a folder")
    copied = []
    for name in SKELETON:
        source, target = PAPER_DIR / name, paper / name
        if target.exists() or paper.resolve() == PAPER_DIR.resolve():
            continue
        try:
            paper.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        except OSError as exc:
            raise HarnessError(f"--paper {paper}: cannot create the paper's {name} there ({exc.strerror or exc})") \
                from None
        copied.append(name)
    return copied
