"""Every dataset, model, loss, miner and metric the catalog offers has a source in the bibliography, and every
\\cite of the paper resolves (harness.citations, part of `make check`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import citations
from tests.conftest import REPO


def test_the_paper_cites_a_source_for_every_catalog_name_and_every_cite_resolves():
    assert citations.problems(REPO / "paper") == []
    keys = citations.bib_keys(REPO / "paper" / "references.bib")
    for kind, names in citations.catalog_names().items():
        for name in names:
            assert citations.CITATIONS[kind][name] in keys | {citations.OWN}, (kind, name)


def test_a_missing_source_and_an_unresolved_cite_are_each_one_line(tmp_path: Path, monkeypatch):
    paper = tmp_path / "paper"
    shutil.copytree(REPO / "paper", paper, ignore=shutil.ignore_patterns("generated", "build"))
    chapter = paper / "chapters" / "related.tex"
    chapter.write_text(chapter.read_text() + "\nAs shown before~\\cite{nobody2099, musgrave2020reality}.\n")
    losses = dict(citations.CITATIONS["loss"])
    losses.pop("nca")
    losses["arcface"] = "deng2099arcface"
    monkeypatch.setitem(citations.CITATIONS, "loss", losses)
    found = citations.problems(paper)
    assert len(found) == 3, found
    assert any("loss 'nca' has no source" in line for line in found[:2])
    assert any("loss 'arcface': its source 'deng2099arcface' is not in" in line for line in found[:2])
    lines = len(chapter.read_text().splitlines())
    assert found[2].startswith(f"{chapter}:{lines}: \\cite{{nobody2099}} is not in")
