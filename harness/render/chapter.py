"""One study's chapter material: its records -> setup, tables, figures and reference files, written into a scratch
folder beside paper/generated/<study>/ and swapped in whole, so that folder always holds one complete render."""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from harness import aggregate, files, search, spec, store, units
from harness.plan import distinct, records_of, study_records
from harness.errors import HarnessError
from harness.render import PAPER_DIR, baselines, figures, latex
from harness.render.axes import figure_label, metric_name
from harness.render.facts import planned_facts, setup_facts
from harness import kinds
from harness.kinds import KINDS


@dataclass(frozen=True, eq=False)
class StudyData:
    """One study of the rendered profile, read once and handed to every file drawn from it: its spec, its full
    profile's spec, its records (finished and failed) and their results frame, and its claims computed once."""

    study: spec.Study
    full: spec.Study
    records: list[store.RunRecord]
    frame: pd.DataFrame  # every finished record, baselines included (aggregate.long_frame)
    scan: store.Scan | None = None  # the records as read (a declared search's choice reads it)

    @functools.cached_property
    def claims(self) -> list[tuple[Any, Any]]:
        """(claim, its result) per declared claim; the result is the HarnessError when the records cannot give it.
        Unadjusted until `judge` has adjusted the profile's claims as one family."""
        from harness import claims

        return list(zip(self.study.spec.report.claims, claims.study_claims(self.study, self.frame)))

    @functools.cached_property
    def settings(self) -> dict[str, str]:
        """claim name -> the setting it was tested on, from its cells' resolved configs (dataset, epochs)."""
        from harness import claims

        return {c.name: claims.stand_in(self.study, c) for c in self.study.spec.report.claims if c.a is not None}


def judge(data: Mapping[str, StudyData]) -> None:
    """Adjust every claim of the profile as one family (claims.family, Holm) and keep the adjusted results in
    each study's data, where the findings and the verdict table read them."""
    from harness import claims

    flat = claims.family([result for d in data.values() for _, result in d.claims])
    for d in data.values():
        n = len(d.claims)
        d.__dict__["claims"] = [(claim, result) for (claim, _), result in zip(d.claims, flat[:n])]  # the cache
        flat = flat[n:]


def read_study(name: str, profile: str, results: Path) -> StudyData:
    scan = store.scan(results, name, profile)  # read once: the search's choice and the records share it
    # A declared search's chosen runs join the study once its records say which trial won (harness.search).
    study = search.with_chosen(spec.load(name, profile, components=False), scan)
    full = study if profile == "full" else spec.load(name, "full", study.path.parent, components=False)
    records = records_of(study, scan)
    return StudyData(study, full, records, aggregate.long_frame(records), scan)


def render(studies: Sequence[str], profile: str, results: Path, paper: Path = PAPER_DIR) -> list[Path]:
    """Write every study's generated files; a study with no records gets a note saying how to produce them."""
    env = latex.environment(paper / "templates")
    generated, written = paper / "generated", []
    # The family of tests is every claim of the profile: each study is read, rendered or not.
    data = {name: read_study(name, profile, results) for name in dict.fromkeys([*studies, *spec.list_studies()])}
    judge(data)
    for name in studies:
        written.extend(render_study(data[name], generated, env))
    # The document is one profile: a chapter left from another profile's render would sit beside this one's.
    # Rendering a few studies keeps the others' chapters of the same profile, and the tables that span the
    # thesis (verdicts, compute, artifact) then cover every study the document holds, not only those rendered.
    kept = drop_other_profiles(generated, profile)
    present = [*studies, *(name for name in kept if name not in studies)]
    target = generated / "verdicts.tex"
    files.atomic_write(target, env.get_template("verdicts.tex.j2").render(
        rows=[row for name in present for row in claim_rows(data[name])], profile=profile))
    compute = generated / "compute.tex"
    files.atomic_write(compute, env.get_template("compute.tex.j2").render(
        rows=[compute_row(data[name], results) for name in present], profile=profile))
    artifact = generated / "artifact.tex"
    files.atomic_write(artifact, env.get_template("artifact.tex.j2").render(
        rows=[row for name in present for row in artifact_rows(data[name])], profile=profile))
    from harness.render import learning

    forest_pdf, forest_tex = generated / "forest.pdf", generated / "forest.tex"
    drawn = figures.claims_forest([row for name in present for row in forest_rows(data[name])], forest_pdf)
    files.atomic_write(forest_tex, env.get_template("forest.tex.j2").render(rows=drawn, profile=profile))
    pipeline_pdf = generated / "pipeline.pdf"
    figures.pipeline(pipeline_pdf)
    glyph_pdf, glyph_tex = generated / "glyphs.pdf", generated / "glyphs.tex"
    facts = figures.glyph_examples(glyph_pdf)
    files.atomic_write(glyph_tex, env.get_template("glyphs.tex.j2").render(**facts))
    titlepage = generated / "titlepage.tex"
    files.atomic_write(titlepage, env.get_template("titlepage.tex.j2").render(
        profile=profile, **title_facts([record for name in present for record in data[name].records])))
    learned = generated / "learning.tex"
    files.atomic_write(learned, env.get_template("learning.tex.j2").render(
        s=learning.summary([data[name] for name in present]), profile=profile))
    return [*written, target, compute, artifact, titlepage, forest_pdf, forest_tex, pipeline_pdf, glyph_pdf, glyph_tex, learned, *write_preregistrations(generated, env),
            write_chapter_list(present, paper, env)]


CITATION = PAPER_DIR.parent / "CITATION.cff"


def title_facts(records: Sequence[store.RunRecord]) -> dict[str, Any]:
    """The title page: CITATION.cff's authors, version and release date, and the commits the records name (most
    runs first), with how many came from a clean tree."""
    import yaml

    cff = yaml.safe_load(CITATION.read_text()) if CITATION.is_file() else {}
    names = [a.get("name") or " ".join(filter(None, [a.get("given-names"), a.get("family-names")]))
             for a in cff.get("authors") or []]
    records = distinct(records)
    counts: dict[str, int] = {}
    for record in records:
        commit = record.provenance.git.commit or "unknown"
        counts[commit] = counts.get(commit, 0) + 1
    commits = [{"commit": c, "runs": n} for c, n in sorted(counts.items(), key=lambda item: -item[1])]
    return {"authors": ", ".join(names) or "--", "version": str(cff.get("version", "--")),
            "released": str(cff.get("date-released", "--")), "records": len(records), "commits": commits,
            "clean": sum(1 for r in records if r.provenance.git.dirty is False)}


def write_preregistrations(generated: Path, env: jinja2.Environment) -> list[Path]:
    """generated/preregistration.tex: every profile's pre-registration (harness.preregistration), for the
    appendix; empty where none was written."""
    from harness import preregistration

    parts = []
    for profile in spec.PROFILES:
        doc = preregistration.read(spec.EXPERIMENTS_DIR, profile)
        if doc is None:
            continue
        path = preregistration.path_for(spec.EXPERIMENTS_DIR, profile)
        parts.append(env.get_template("preregistration.tex.j2").render(
            doc=doc, profile=profile, path=str(path.relative_to(spec.EXPERIMENTS_DIR.parent)),
            digest=preregistration.sha256_of(spec.EXPERIMENTS_DIR, profile), cell=cell_words))
    target = generated / "preregistration.tex"
    files.atomic_write(target, "\n".join(parts))
    return [target]


def cell_words(cell: Mapping[str, Any]) -> str:
    """A frozen claim cell as LaTeX: its runs (the `where`, labels as the study file spells them), metric and
    epoch rule in words."""
    from harness.render.latex import label_tex, latex_escape

    def metric(name: str) -> str:
        return latex_escape(metric_name(name))

    where = ", ".join(f"{latex_escape(k)} = {'none' if v is None else label_tex(v)}"
                      for k, v in cell["where"].items()) or "every run"
    rule = str(cell["epoch"])
    epoch = ("" if rule == "last" else f" at the epoch of the best {metric(rule.removeprefix('best:'))}"
             if rule.startswith("best:") else f" at epoch {rule}")
    chosen = (f", best of {latex_escape('/'.join(cell['select']['axes']))} by {metric(cell['select']['by'])}"
              if cell.get("select") else "")
    return f"[{where}] {metric(cell['metric'])}{epoch}{chosen}"


PROFILE_STAMP = "profile.txt"  # in each generated/<study>/: the profile it was rendered from


def drop_other_profiles(generated: Path, profile: str) -> list[str]:
    """Remove the study folders under `generated` rendered from another profile (or before folders said which),
    saying so in one line each; return the names of the studies, in the order `harness list` gives, whose folders
    were rendered from `profile`."""
    known = spec.list_studies()
    kept = []
    for folder in sorted(p for p in generated.iterdir() if p.is_dir() and not p.name.startswith(".")):
        stamp = folder / PROFILE_STAMP
        was = stamp.read_text().strip() if stamp.is_file() else None
        if was == profile and folder.name in known:
            kept.append(folder.name)
            continue
        shutil.rmtree(folder)
        why = (f"rendered from profile {was}" if was and folder.name in known else
               "its study is no longer in the studies' folders" if was else "rendered before folders named a profile")
        print(f"removed {folder} ({why}); the document holds profile {profile} only", file=sys.stderr)
    return sorted(kept, key=known.index)


def artifact_rows(data: StudyData) -> list[dict[str, Any]]:
    """For the artifact appendix: each table and figure of a study, the runs behind it and their measured cost."""
    from harness.render import items

    study = data.study
    records = {r.run_id: r for r in data.records}
    rows = []
    for item in items.names(study.spec.report):
        if item in {c.name for c in study.spec.report.claims}:
            continue  # claims are listed in the conclusion
        try:
            behind = items.runs_behind(study.spec.report, item, data.frame, study.profile, study.axes)
        except HarnessError:
            behind = set()
        rows.append({"name": f"{study.name}/{item}", "runs": len(behind),
                     "hours": sum(records[r].timing.wall_s for r in behind if r in records) / 3600.0})
    return rows


def compute_row(data: StudyData, results: Path) -> dict[str, Any]:
    """For the limitations chapter: the hours the rendered profile's records measured, and what the full
    profile would take (its runs, and its estimate, labelled as one, where it was not run)."""
    study, full, records = data.study, data.full, data.records
    recorded_full = study_records(full, results) if study.profile != "full" else records
    records = distinct(records)
    failed = sum(r.status == "failed" for r in records)
    return {"study": study.name, "runs": search.planned(study), "recorded": len(records) - failed, "failed": failed,
            "hours": sum(r.timing.wall_s for r in records) / 3600.0,
            "cpus": sorted({r.provenance.cpu or "unknown" for r in records}),
            "full_runs": search.planned(full), "full_recorded": len(recorded_full),
            "estimate": full.spec.profiles["full"].estimate}


SEARCH_KEYS = {"optimizer.lr": "learning rate", "loss.margin": "margin", "loss.pos_margin": "positive margin",
               "loss.neg_margin": "negative margin", "loss.alpha": "alpha", "loss.beta": "beta", "loss.base": "base",
               "loss.temperature": "temperature", "loss.m": "margin m", "loss.s": "scale s",
               "train.loss_lr_multiplier": "loss weights' learning rate (x the network's)"}


def search_facts(study: spec.Study, scan: store.Scan) -> dict[str, Any]:
    """The search table's rows: per method the searched keys in words with their ranges, the chosen trial and its
    values, and the validation scores of the start setting (trial 0, with include_start) and the chosen trial."""
    plan = study.search

    def key(name: str) -> str:
        return SEARCH_KEYS.get(name, name.rsplit(".", 1)[-1].replace("_", " "))

    def value(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    def score(v: float | None) -> str:
        return "--" if v is None else units.fixed(v)

    rows = []
    for choice in search.choices(study, scan):
        ranges = []
        for name, dist in plan.spec.keys(choice.method).items():
            if dist.choices is not None:
                ranges.append(f"{key(name)} ({', '.join(value(c) for c in dist.choices)})")
            else:
                ranges.append(f"{key(name)} ({value(dist.low)}-{value(dist.high)}{', log' if dist.log else ''})")
        rows.append({"method": aggregate.label_text(choice.method), "searched": "; ".join(ranges),
                     "trial": choice.trial, "why": choice.why_none,
                     "chosen": ", ".join(f"{key(k)} {value(v)}" for k, v in choice.params.items()),
                     "start_score": score(choice.scores.get(0)) if plan.spec.include_start else "--",
                     "score": score(choice.objective)})
    return {"profile": study.profile, "rows": rows, "methods": plan.spec.methods,
            "budget": plan.budgets, "folds": plan.spec.folds,
            "seed": plan.spec.seed, "include_start": plan.spec.include_start,
            "metric": "validation " + metric_name(plan.spec.objective.metric)}


def claim_rows(data: StudyData) -> list[dict[str, Any]]:
    """One row per claim of a study for the conclusion's tables: its kind, statement, effect and verdict."""
    rows = []
    for claim, result in data.claims:
        row = {"study": data.study.name, "claim": claim.name, "kind": claim.kind, "statement": claim.statement}
        if isinstance(result, HarnessError):
            rows.append({**row, "verdict": "no records", "effect": ""})
            continue
        rows.append({**row, "verdict": result.verdict, "effect": effect_text(result),
                     "setting": "" if result.on_original or not result.parts else data.settings.get(claim.name, ""),
                     "adjusted": min((t.adjusted for t in result.tests if t.adjusted is not None), default=None),
                     "unadjusted": result.verdict_at(adjusted=False)})
    return rows


def forest_rows(data: StudyData) -> list[dict[str, Any]]:
    """Each computed difference of a study's claims, in points, for the forest plot (one per `per` label)."""
    from harness import units

    rows = []
    for claim, result in data.claims:
        if isinstance(result, HarnessError) or result.untestable:
            continue
        for part in result.parts:
            d = part.difference
            if d.n < 2 or not np.isfinite(d.half):
                continue
            label = "" if part.label is None else f" ({figure_label(part.label)})"
            rows.append({"kind": claim.kind, "name": f"{data.study.name}/{claim.name}{label}",
                         "mean": d.mean * units.PERCENT, "low": d.low * units.PERCENT,
                         "high": d.high * units.PERCENT})
    return rows


def effect_text(result: Any) -> str:
    """A claim's difference(s) in points with the 95 % interval: one, or the range over its parts."""
    from harness import units

    if not result.parts:
        return ""
    diffs = [p.difference for p in result.parts]
    if len(diffs) == 1:
        d = diffs[0]
        return f"{units.signed(d.mean)} [{units.signed(d.low)}, {units.signed(d.high)}]"
    return (f"{units.signed(min(d.mean for d in diffs))} to {units.signed(max(d.mean for d in diffs))}"
            f" [{units.signed(min(d.low for d in diffs))}, {units.signed(max(d.high for d in diffs))}]")


def render_study(data: StudyData, generated: Path, env: jinja2.Environment) -> list[Path]:
    """paper/generated/<study>/, replaced whole: an error or a kill midway leaves the previous render as it was."""
    study = data.study
    trained, baseline_runs = baselines.split_records(data.records)
    target = generated / study.name
    try:
        with swapped_in(target) as folder:
            names = write_chapter(Chapter(data, aggregate.long_frame(trained), env, folder,
                                          aggregate.long_frame(baseline_runs)))
            (folder / PROFILE_STAMP).write_text(study.profile + "\n")
            names.append(PROFILE_STAMP)
    except HarnessError as exc:
        raise HarnessError(f"{study.name}: {exc}") from None
    return [target / name for name in names]


@dataclass(frozen=True, eq=False)
class Chapter:
    """What every file of one study's chapter is drawn from, and the folder they go to."""

    data: StudyData
    frame: pd.DataFrame  # the trained runs (no baselines)
    env: jinja2.Environment
    folder: Path
    baselines: pd.DataFrame = field(default_factory=pd.DataFrame)  # the baseline runs

    @property
    def study(self) -> spec.Study:
        return self.data.study

    @property
    def records(self) -> list[store.RunRecord]:
        return self.data.records

    @property
    def names(self) -> dict[str, str]:
        return self.study.spec.report.axis_labels

    def write(self, name: str, template: str, **context: Any) -> str:
        text = self.env.get_template(template).render(study=self.study.name, **context)
        (self.folder / name).write_text(text)
        return name

    def absent(self, *axes: str | None) -> list[str]:
        """The axes an item needs that this profile's runs lack (an axis of another profile)."""
        present = set(self.frame.columns) | {"metric"}
        return sorted({a for a in axes if a is not None} - present)

    def omitted(self, name: str, absent: list[str]) -> list[str]:
        """A stand-in for an item this profile cannot draw, so every item a chapter names has its file."""
        # It keeps the item's float and label, so the chapter's "Table~\\ref{...}" resolves to a caption that
        # says why nothing is drawn, never to "??".
        item = name.removesuffix(".tex")
        kind, short = ("figure", item.removeprefix("figure_")) if item.startswith("figure_") else (
            "table", item.removeprefix("table_"))
        return [self.write(name, "omitted.tex.j2", profile=self.study.profile, absent=absent, kind=kind,
                           item=short, label=f"{'fig' if kind == 'figure' else 'tab'}:{self.study.name}:{short}")]


def write_chapter(chapter: Chapter) -> list[str]:
    """The chapter's files, by name: setup, then each item the report declares (harness.kinds)."""
    study = chapter.study
    names = [chapter.write("full.tex", "full.tex.j2", full=planned_facts(chapter.data.full), rendered=study.profile),
             write_generated_chapter(chapter)]
    if chapter.frame.empty:
        return names + [chapter.write("missing.tex", "missing.tex.j2", profile=study.profile,
                                      expected=search.planned(study))]
    facts = setup_facts(chapter.records, study.profile, study.description)
    names.append(chapter.write("setup.tex", "setup.tex.j2", facts=facts, expected=search.planned(study)))
    if study.search is not None:  # what was searched and what won, from the study file and the records
        names.append(chapter.write("search.tex", "search.tex.j2", **search_facts(study, chapter.data.scan)))
    for kind in KINDS:  # tables, figures, the reference, the protocols table, the findings
        names += kind.write(chapter, kinds.specs(kind, chapter.study.spec.report), facts)
    return names


def write_generated_chapter(chapter: Chapter) -> str:
    """chapter.tex: the chapter main.tex's \\studychapter inputs for a study without paper/chapters/<study>.tex,
    so that a new study appears in the PDF with its question, protocol, tables, figures and findings."""
    study, report = chapter.study, chapter.study.spec.report
    return chapter.write("chapter.tex", "chapter.tex.j2", title=study.spec.title, question=study.spec.question,
                         items=kinds.inputs(report, "results"), claims=bool(kinds.inputs(report, "findings")),
                         compared=kinds.inputs(report, "compared"))


STUDY_CHAPTER = re.compile(r"^[^%\n]*\\studychapter\{([^}]+)\}", re.MULTILINE)


def write_chapter_list(studies: Sequence[str], paper: Path, env: jinja2.Environment) -> Path:
    """generated/chapters.tex: a \\studychapter for every rendered study that main.tex does not place itself
    (a study added to experiments/ or by $HARNESS_EXPERIMENTS), after the project's own chapters."""
    placed = set(STUDY_CHAPTER.findall((paper / "main.tex").read_text()))
    target = paper / "generated" / "chapters.tex"
    files.atomic_write(target, env.get_template("chapters.tex.j2").render(
        studies=[name for name in studies if name not in placed]))
    return target


@contextlib.contextmanager
def swapped_in(target: Path) -> Iterator[Path]:
    """A scratch folder beside `target` that replaces it once the block finishes; on an exception (or a kill)
    the scratch folder is dropped and `target` keeps the previous render."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.rendering."))
    try:
        yield scratch
        scratch.chmod(0o755)  # mkdtemp's 0700 would hide the paper from a group sharing the checkout
        replace_folder(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def replace_folder(new: Path, target: Path) -> None:
    """Rename `new` to `target`. rename() cannot replace a non-empty folder, so the old one steps aside first: a
    kill between the two renames leaves no folder (the PDF then says 'Not rendered'), never a mix of two renders."""
    old = target.with_name(f".{target.name}.old.{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(target: Path) -> None:
    """Scratch and stepped-aside folders of renders killed before they finished."""
    for pattern in (f".{target.name}.rendering.*", f".{target.name}.old.*"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)
