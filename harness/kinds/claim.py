"""The claim kind (`report.claims`): each finding's sentence with its numbers as macros computed from the records
(findings.tex) and its verdict; verified by recomputing the difference and the verdict with the reruns in place,
whenever it reads a rerun run."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from harness.errors import ConfigError, HarnessError
from harness.kinds.shared import Checker, SelectSpec
from harness.prose import hand_typed
from harness.schema import Strict

if TYPE_CHECKING:  # the behaviour's types, read at render and verify time (imported inside the functions)
    from harness.render.compare import ItemCheck, Rerun

NAME = "claim"
FIELD = "claims"  # its key in a study's `report:`
SECTION = "findings"


Verdict = Literal["reproduced", "not reproduced", "contradicted", "not testable here"]
VERDICTS = ("reproduced", "not reproduced", "contradicted", "not testable here")
# What a sentence may refer to: {mean}, {low}, {high} of the difference in percentage points (one cell pair);
# with `per`: {min} and {max} of the per-label mean differences and {lowest}/{highest} interval ends; always {a}
# and {b} (the cells' means in percent; with `per`, their ranges) and {n} (seed pairs).
PLACEHOLDERS = ("mean", "low", "high", "min", "max", "lowest", "highest", "a", "b", "n")
# {a_<axis>} / {b_<axis>}: the labels of that axis among a cell's runs, read from the records, so that a sentence
# names the budget, split or setting each profile compares instead of typing it.
LABEL_PLACEHOLDER = re.compile(r"^([ab])_(\w+)$")


class ClaimCell(Strict):
    """Runs (a `where` as in report.protocols: strict; a cell without `baseline` in it never reads a baseline run),
    one metric, at one epoch rule (last, best:<metric>, or an evaluated epoch), optionally the best grid cell."""

    where: dict[str, Any] = {}
    where_in: dict[str, dict[str, Any]] = {}  # profile -> its own `where`
    metric: str
    epoch: str | int = "last"
    select: SelectSpec | None = None


class ClaimSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # stable: check messages and macros use it
    original: str  # the original's claim this addresses, in words
    sentence: str  # the finding, with {placeholders} for its numbers (no number typed by hand)
    a: ClaimCell | None = None
    b: ClaimCell | None = None  # the difference computed is a - b
    per: str | None = None  # one difference per label of this axis (among a's runs); the verdict needs them all
    # what the original's claim predicts of a against b; "same": that they do not differ (reproduced while the
    # interval contains 0, contradicted when it excludes it)
    expect: Literal["higher", "lower", "same"] = "higher"
    verdict: Verdict  # what the records are expected to give; `harness check` fails when they stop giving it
    reason: str = ""  # why, for "not testable here"

    @model_validator(mode="after")
    def _shape(self) -> ClaimSpec:
        if self.verdict == "not testable here":
            if not self.reason:
                raise ConfigError(f"report.claims '{self.name}': a claim not testable here needs a `reason`")
            if self.a is not None or self.b is not None:
                raise ConfigError(f"report.claims '{self.name}': a claim not testable here computes nothing "
                                  "(no `a`, `b`)")
        elif self.a is None or self.b is None:
            raise ConfigError(f"report.claims '{self.name}': give the cells `a` and `b` (the difference a - b)")
        for field in re.findall(r"\{(\w*)\}", self.sentence):
            if field not in PLACEHOLDERS and not LABEL_PLACEHOLDER.match(field):
                raise ConfigError(f"report.claims '{self.name}': sentence placeholder {{{field}}} is not one of "
                                  f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}, or {{a_<axis>}} / "
                                  "{b_<axis>} (a cell's labels on that axis)")
        if hand_typed(self.sentence):
            raise ConfigError(f"report.claims '{self.name}': the sentence types a result number "
                              f"({hand_typed(self.sentence)[0]!r}); use a placeholder")
        return self


FIELD_TYPE, FIELD_DEFAULT = list[ClaimSpec], []  # how ReportSpec holds this kind's items


def check(claims: list[ClaimSpec], checker: Checker) -> None:
    names = [claim.name for claim in claims]
    if len(set(names)) != len(names):
        raise ConfigError(f"{checker.path}: report.claims: two claims share a name; names: {', '.join(names)}")
    anywhere = tuple(checker.anywhere)
    for claim in claims:
        where = f"report.claims '{claim.name}'"
        if claim.per is not None:
            checker.axis(f"{where}.per", claim.per, anywhere)
        for field in re.findall(r"\{(\w*)\}", claim.sentence):
            if found := LABEL_PLACEHOLDER.match(field):
                checker.axis(f"{where}.sentence {{{field}}}", found.group(2), anywhere)
        for side in ("a", "b"):
            cell = getattr(claim, side)
            if cell is None:
                continue
            if isinstance(cell.epoch, str) and cell.epoch != "last" and not cell.epoch.startswith("best:"):
                raise ConfigError(f"{checker.path}: {where}.{side}.epoch: '{cell.epoch}': last, best:<metric> or "
                                  "an evaluated epoch (a number)")
            checker.cell(f"{where}.{side}", cell, ranked=True)


def stem(spec: ClaimSpec) -> str:
    return "findings"  # one file for every claim of a chapter


def write(chapter: Any, specs: list[ClaimSpec], facts: dict[str, Any]) -> list[str]:
    """findings.tex: each claim's sentence, its numbers as macros (defined in the same file from the records),
    its verdict and the original's claim it addresses. A claim this profile's records cannot compute says so.
    (chapter.data.claims holds these claims computed once.)"""
    from harness import claims

    items = []
    for claim, result in chapter.data.claims:
        if isinstance(result, HarnessError):
            items.append({"claim": claim, "missing": str(result)})
            continue
        numbers = result.numbers()
        macros = {field: claims.macro_name(chapter.study.name, claim.name, field) for field in numbers}
        items.append({"claim": claim, "verdict": result.verdict, "numbers": numbers, "macros": macros,
                      "sentence": sentence_tex(claim.sentence, chapter.study.name, claim.name)})
    if not items:
        return []
    return [chapter.write("findings.tex", "findings.tex.j2", items=items, profile=chapter.study.profile)]


def sentence_tex(sentence: str, study: str, claim: str) -> str:
    """A claim's sentence as LaTeX: its text escaped, each {placeholder} the macro of that number."""
    from harness.render import latex

    parts = re.split(r"\{(\w+)\}", sentence)
    return "".join(latex.latex_escape(part) if i % 2 == 0 else f"\\claimval{{{study}}}{{{claim}}}{{{part}}}"
                   for i, part in enumerate(parts))


def runs_behind(spec: ClaimSpec, frame: Any, profile: str, order: Any) -> set[str]:
    from harness import claims

    return set(claims.compute(spec, frame, profile, order).runs)


def verify(spec: ClaimSpec, rerun: Rerun) -> ItemCheck | None:
    from harness import claims, units
    from harness.render.axes import label_text
    from harness.render.compare import CellDiff, ItemCheck, slack

    try:
        was = claims.compute(spec, rerun.before.all, rerun.profile, rerun.order)
    except HarnessError:  # the records cannot compute it (harness check says why): nothing to compare
        return None
    if not rerun.asked(spec.name) and not (was.runs & set(rerun.reruns)):
        return None
    item = ItemCheck(f"{rerun.study}/{spec.name}", NAME, scale=units.PERCENT)
    try:
        now = claims.compute(spec, rerun.after.with_axes(rerun.before).all, rerun.profile, rerun.order)
    except HarnessError as exc:  # a rerun it reads did not finish
        item.changes.append(f"not computable from the reruns ({exc})")
        return item
    for old, new in zip(was.parts, now.parts):
        where = "" if old.label is None else f" ({label_text(old.label)})"
        item.cells.append(CellDiff(f"difference{where}", old.difference, new.difference,
                                   slack(rerun.tolerance, item)))
    if now.verdict != was.verdict:
        item.changes.append(f"verdict {was.verdict} -> {now.verdict}")
    if now.verdict != spec.verdict:
        item.changes.append(f"the rerun gives '{now.verdict}', the study declares '{spec.verdict}'")
    return item
