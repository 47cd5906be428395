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


Kind = Literal["original", "question", "hypothesis"]
# The verdict's words say what was claimed and on which evidence (holds, undecided, fails). An original's claim
# tested on its own data at a comparable budget is reproduced or contradicted; tested on a stand-in (other data,
# another budget) the records can only be consistent or inconsistent with it. A hypothesis of this thesis is
# supported or contradicted wherever it is tested. A question gets its answer (the effect and its interval), no
# verdict. An effect that cannot act in a setting is "not testable here", with the reason computed or declared.
WORDS = {("original", True): ("reproduced", "not reproduced", "contradicted"),
         ("original", False): ("consistent", "inconclusive", "inconsistent"),
         ("hypothesis", True): ("supported", "inconclusive", "contradicted"),
         ("hypothesis", False): ("supported", "inconclusive", "contradicted"),
         ("question", True): ("answered",) * 3,
         ("question", False): ("answered",) * 3}
NOT_TESTABLE = "not testable here"
OUTCOMES = ("holds", "undecided", "fails")  # the order of each WORDS entry
# What a sentence may refer to: {mean}, {low}, {high} of the difference in percentage points (one cell pair);
# with `per`: {min} and {max} of the per-label mean differences and {lowest}/{highest} interval ends; always {a}
# and {b} (the cells' means in percent; with `per`, their ranges) and {n} (seed pairs).
PLACEHOLDERS = ("mean", "low", "high", "min", "max", "lowest", "highest", "a", "b", "n")
# {a_<axis>} / {b_<axis>}: the labels of that axis among a cell's runs, read from the records, so that a sentence
# names the budget, split or setting each profile compares instead of typing it.
LABEL_PLACEHOLDER = re.compile(r"^([ab])_(\w+)$")
# The placeholders that carry a sign, and the words that assert a direction: a sentence with both could read
# "above by -2"; which way a difference goes is said by the generated reading (claims.Result.reading).
SIGNED = ("mean", "low", "high", "min", "max", "lowest", "highest")
DIRECTION = re.compile(r"\b(?:above|below|better|worse|higher|lower|beats?|exceeds?|outperforms?|gains?|drops?|"
                       r"improves?|hurts?|increases?|decreases?|ahead of|behind|more than|less than)\b", re.I)
# {a.<config key>} / {b.<config key>}: a setting of a cell's runs read from their resolved configs (the N of an
# N-way task, the classes it draws from), so that a sentence never types what a profile sets.
CONFIG_PLACEHOLDER = re.compile(r"^([ab])\.([a-z_]+(?:\.[a-z_]+)*)$")
FIELDS = re.compile(r"\{([\w.]*)\}")  # every {placeholder} of a sentence


def words(kind: str, on_original: bool) -> tuple[str, str, str]:
    """The verdict words (holds, undecided, fails) of a claim of this kind on this evidence."""
    return WORDS[(kind, on_original)]


class ClaimCell(Strict):
    """Runs (a `where` as in report.protocols: strict; a cell without `baseline` in it never reads a baseline run),
    one metric, at one epoch rule (last, best:<metric>, or an evaluated epoch), optionally the best grid cell."""

    where: dict[str, Any] = {}
    where_in: dict[str, dict[str, Any]] = {}  # profile -> its own `where`
    metric: str
    epoch: str | int = "last"
    select: SelectSpec | None = None


class Quote(Strict):
    """An original's own words (a short quotation, translated where the source is not in English) and where they
    stand in its seed document."""

    text: str
    source: str  # e.g. "seed 000, abstract"


class Reported(Strict):
    """The difference a - b an original reported for this claim, in percentage points, and where it reported it:
    each finding then says whether that difference lies inside the interval the records give."""

    effect: float
    source: str


class ClaimSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # stable: check messages and macros use it
    kind: Kind  # original: an original said so; question: an assignment asks it; hypothesis: this thesis's own
    statement: str  # what is claimed or asked, in words
    quote: Quote | None = None  # an original's claim: its words and where they stand (required)
    reported: Reported | None = None  # the original's own difference, where it gave one
    sentence: str  # the finding, with {placeholders} for its numbers (no number typed by hand)
    a: ClaimCell | None = None
    b: ClaimCell | None = None  # the difference computed is a - b
    per: str | None = None  # one difference per label of this axis (among a's runs); the verdict needs them all
    # "difference" (the default): a - b, per label of `per` where given. "spread": how far apart the labels of
    # `per` are, a's against b's: per seed, the best label's value less the worst's, in a and in b; the claim is
    # about the paired difference of those spreads (e.g. losses tuned alike against the same losses at defaults)
    statistic: Literal["difference", "spread"] = "difference"
    # what the claim predicts of a against b (a question predicts nothing); "same": that they differ by less than
    # `margin` points, decided by two one-sided tests; "not higher": that a is at most `margin` points above b,
    # decided by one one-sided test (a control that should learn nothing)
    expect: Literal["higher", "lower", "same", "not higher"] | None = None
    margin: float | None = Field(default=None, gt=0)  # percentage points; with expect "same" or "not higher"
    verdict: dict[str, str] = {}  # profile -> the verdict its records give; `harness check` fails when they stop
    reason: str = ""  # why, for a claim declared not testable here (no cells)

    @model_validator(mode="after")
    def _shape(self) -> ClaimSpec:
        where = f"report.claims '{self.name}'"
        if self.a is None and self.b is None:
            if not self.reason:
                raise ConfigError(f"{where}: a claim without cells is not testable here and needs a `reason`")
        elif self.a is None or self.b is None:
            raise ConfigError(f"{where}: give the cells `a` and `b` (the difference a - b)")
        elif self.reason:
            raise ConfigError(f"{where}: `reason` is for a claim not testable here (no `a`, `b`); this one computes")
        if self.kind == "original" and self.quote is None:
            raise ConfigError(f"{where}: an original's claim quotes it: quote: {{text: ..., source: <seed, place>}}")
        if self.kind == "question" and self.expect is not None:
            raise ConfigError(f"{where}: a question predicts nothing (no `expect`): its answer is the effect")
        if self.kind != "question" and self.expect is None and self.a is not None:
            raise ConfigError(f"{where}: `expect` (higher, lower or same): what the claim predicts of a against b")
        if (self.expect in ("same", "not higher")) != (self.margin is not None):
            raise ConfigError(f"{where}: " + (f"expect {self.expect} needs a `margin` (points): the difference "
                                              "that still counts as none" if self.margin is None else
                                              "a `margin` goes with expect same or not higher only"))
        if self.statistic == "spread" and self.per is None:
            raise ConfigError(f"{where}: statistic spread is the spread over the labels of an axis: give `per`")
        if self.reported is not None and self.per is not None:
            raise ConfigError(f"{where}: `reported` is one difference; a claim with `per` has one per label")
        allowed = {w for on in (True, False) for w in words(self.kind, on)} | {NOT_TESTABLE}
        for profile, word in self.verdict.items():
            if word not in allowed:
                raise ConfigError(f"{where}.verdict.{profile}: '{word}' is not a verdict of a claim of kind "
                                  f"{self.kind}; one of {', '.join(sorted(allowed))}")
        for field in FIELDS.findall(self.sentence):
            if field not in PLACEHOLDERS and not LABEL_PLACEHOLDER.match(field) and not CONFIG_PLACEHOLDER.match(field):
                raise ConfigError(f"{where}: sentence placeholder {{{field}}} is not one of "
                                  f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}, {{a_<axis>}} / "
                                  "{b_<axis>} (a cell's labels on that axis), or {a.<config key>} / {b.<config key>}")
        signed = [f for f in FIELDS.findall(self.sentence) if f in SIGNED]
        if signed and (direction := DIRECTION.search(self.sentence)):
            raise ConfigError(f"{where}: the sentence says '{direction.group(0)}' beside the signed {{{signed[0]}}}, "
                              "which the records can contradict (\"above by -2\"); say how far apart the cells are "
                              "(\"differs by {mean}\"): the finding then says which way, from the sign of the interval")
        if hand_typed(self.sentence):
            raise ConfigError(f"{where}: the sentence types a result number "
                              f"({hand_typed(self.sentence)[0]!r}); use a placeholder")
        return self


FIELD_TYPE, FIELD_DEFAULT = list[ClaimSpec], []
CONFIG_SECTIONS = ("data", "model", "loss", "miner", "optimizer", "train", "eval", "seed")  # a run config's keys  # how ReportSpec holds this kind's items


def check(claims: list[ClaimSpec], checker: Checker) -> None:
    names = [claim.name for claim in claims]
    if len(set(names)) != len(names):
        raise ConfigError(f"{checker.path}: report.claims: two claims share a name; names: {', '.join(names)}")
    anywhere = tuple(checker.anywhere)
    for claim in claims:
        where = f"report.claims '{claim.name}'"
        if claim.per is not None:
            checker.axis(f"{where}.per", claim.per, anywhere)
        for field in FIELDS.findall(claim.sentence):
            if found := LABEL_PLACEHOLDER.match(field):
                checker.axis(f"{where}.sentence {{{field}}}", found.group(2), anywhere)
            elif (found := CONFIG_PLACEHOLDER.match(field)) and found.group(2).split(".")[0] not in CONFIG_SECTIONS:
                raise ConfigError(f"{checker.path}: {where}.sentence {{{field}}}: '{found.group(2)}' is not a "
                                  f"config key; they start with one of {', '.join(CONFIG_SECTIONS)}")
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
    its verdict in the words of its kind and evidence (with the setting where that is a stand-in), its p-values
    (Holm-adjusted over the profile's claims, and unadjusted), the original's reported difference against our
    interval, and what it addresses: an original's words, a question, or this thesis's hypothesis. A claim this
    profile's records cannot compute says so. (chapter.data.claims holds these claims, adjusted as a family.)"""
    from harness import claims

    items = []
    for claim, result in chapter.data.claims:
        if isinstance(result, HarnessError):
            items.append({"claim": claim, "missing": str(result)})
            continue
        numbers = {**result.numbers(), **claims.config_values(claim, chapter.study)}
        macros = {field: claims.macro_name(chapter.study.name, claim.name, field) for field in numbers}
        items.append({"claim": claim, "verdict": result.verdict, "numbers": numbers, "macros": macros,
                      "sentence": sentence_tex(claim.sentence, chapter.study.name, claim.name, numbers),
                      "reading": result.reading(),
                      "untestable": result.untestable, "p": result.p_text(), "inside": result.inside,
                      "unadjusted": result.verdict_at(adjusted=False),
                      "setting": None if result.on_original else chapter.data.settings.get(claim.name)})
    if not items:
        return []
    return [chapter.write("findings.tex", "findings.tex.j2", items=items, profile=chapter.study.profile,
                          question=" ".join(chapter.study.spec.question.split()),
                          answered_by=chapter.study.spec.report.answered_by)]


SINGULAR = {"epochs": "epoch", "seeds": "seed", "runs": "run", "trials": "trial", "folds": "fold", "classes": "class",
            "images": "image"}


def sentence_tex(sentence: str, study: str, claim: str, values: dict[str, str] | None = None) -> str:
    """A claim's sentence as LaTeX: its text escaped, each {placeholder} the macro of that number; a count word
    after a placeholder whose value is 1 in singular ("1 epoch", not "1 epochs")."""
    from harness.render import latex

    values = values or {}
    parts = re.split(r"\{([\w.]+)\}", sentence)
    for i in range(1, len(parts), 2):
        if values.get(parts[i]) == "1" and i + 1 < len(parts):
            parts[i + 1] = re.sub(r"^(\s+)(epochs|seeds|runs|trials|folds|classes|images)\b",
                                  lambda m: m.group(1) + SINGULAR[m.group(2)], parts[i + 1])
    return "".join(latex.latex_escape(part) if i % 2 == 0 else f"\\claimval{{{study}}}{{{claim}}}{{{part}}}"
                   for i, part in enumerate(parts))


def runs_behind(spec: ClaimSpec, frame: Any, profile: str, order: Any) -> set[str]:
    from harness import claims

    return set(claims.compute(spec, frame, profile, order).runs)


def verify(spec: ClaimSpec, rerun: Rerun) -> ItemCheck | None:
    from harness import claims, units
    from harness.render.axes import label_text
    from harness.render.compare import CellDiff, ItemCheck, slack

    original = rerun.on_original == "all" or spec.name in rerun.on_original

    def judged(frame: Any) -> Any:  # computed, then adjusted within the rest of the profile's family
        result = claims.compute(spec, frame, rerun.profile, rerun.order, original)
        rest = [r for key, r in rerun.others.items() if key != (rerun.study, spec.name)]
        return claims.family([*rest, result])[-1]

    try:
        was = judged(rerun.before.all)
    except HarnessError:  # the records cannot compute it (harness check says why): nothing to compare
        return None
    if not rerun.asked(spec.name) and not (was.runs & set(rerun.reruns)):
        return None
    item = ItemCheck(f"{rerun.study}/{spec.name}", NAME, scale=units.PERCENT, shows="difference a - b, percent")
    rerun_here = was.runs & set(rerun.reruns)
    if len(rerun_here) < len(was.runs):  # the reruns asked for are a part of what this claim reads
        rest = len(was.runs) - len(rerun_here)
        item.note = (f"recomputed from {len(rerun_here)} rerun{'s' if len(rerun_here) != 1 else ''} and the {rest} "
                     f"committed record{'s' if rest != 1 else ''} it also reads")
    try:
        now = judged(rerun.after.with_axes(rerun.before).all)
    except HarnessError as exc:  # a rerun it reads did not finish
        item.changes.append(f"not computable from the reruns ({exc})")
        return item
    for old, new in zip(was.parts, now.parts):
        where = "" if old.label is None else f" ({label_text(old.label)})"
        item.cells.append(CellDiff(f"difference{where}", old.difference, new.difference,
                                   slack(rerun.tolerance, item)))
    if now.verdict != was.verdict:
        item.changes.append(f"verdict {was.verdict} -> {now.verdict}")
    declared = spec.verdict.get(rerun.profile)
    if declared is not None and now.verdict != declared:
        item.changes.append(f"the rerun gives '{now.verdict}', the study declares '{declared}'")
    return item
