"""The protocols kind (`report.protocols`): per claim of the original, its number, ours run its way, ours
corrected, and the paired difference; verified on its runs' cells, when asked for by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from harness.errors import ConfigError
from harness.kinds.shared import Checker, SelectSpec, each, epoch_rule, where_for
from harness.schema import Strict

if TYPE_CHECKING:  # the behaviour's types, read at render and verify time (imported inside the functions)
    from harness.render.compare import ItemCheck, Rerun

NAME = "protocols"
FIELD = "protocols"  # its key in a study's `report:`
SECTION = "compared"


class ProtocolCell(Strict):
    """Our runs and the epoch of one protocol in a claim's row: the runs matching `where` (and the row's labels;
    a run without one of those axes is kept), narrowed by `select`, at the epoch `epoch` picks."""

    where: dict[str, Any] = {}
    # profile -> the `where` for that profile, where its grid differs (the quick arcface softmax with the same
    # optimizer as ArcFace is lr 1e-3; in the full grid, lr 0.01 with momentum 0.5)
    where_in: dict[str, dict[str, Any]] = {}
    select: SelectSpec | None = None
    metric: str | None = None  # default: the claim's metric
    # last | best:<metric> | faithful: the epoch the original-protocol cell of the same row was read at (a
    # corrected run evaluated after as many epochs as the original's call trained)
    epoch: str = "last"

    @field_validator("epoch")
    @classmethod
    def _epoch(cls, rule: str) -> str:
        return epoch_rule(rule, ("faithful",))


class ProtocolClaim(Strict):
    """One number the original reported, and how it reads under its protocol and under ours."""

    label: str  # what it is ("R@1, last epoch")
    metric: str  # our metric
    theirs: str | None = None  # the CSV column holding their number (None: they reported none)
    faithful: ProtocolCell  # ours, run or read the original's way
    corrected: ProtocolCell  # ours, the corrected way
    note: str = ""  # for the caption: what the corrected column is, when not the same measurement


class ProtocolSpec(Strict):
    """The "original / ours with the original's protocol / ours corrected / corrected - faithful" table: one
    row per claim and label of `rows` among the faithful runs, the difference paired by seed with its 95%
    t-interval."""

    file: str  # relative to experiments/: their numbers
    source: str
    caption: str
    rows: list[str] = Field(min_length=1)  # our axes whose labels name a row
    their_rows: dict[str, str] = {}  # our axis -> the CSV column holding its label there
    row_map: dict[str, Any] = {}  # their labels -> ours
    their_where: dict[str, Any] = {}  # CSV column -> value: their rows in the setting compared
    percent_in_file: bool = True
    claims: list[ProtocolClaim] = Field(min_length=1)
    spread: bool = False  # also the lowest and highest single run of the faithful cell (the originals ran once)


FIELD_TYPE, FIELD_DEFAULT = ProtocolSpec | None, None  # how ReportSpec holds this kind's items


def check(protocols: ProtocolSpec | None, checker: Checker) -> None:
    if protocols is None:
        return
    for axis in [*protocols.rows, *protocols.their_rows]:
        checker.axis("report.protocols.rows", axis, tuple(checker.anywhere))
    for i, claim in enumerate(protocols.claims):
        where = f"report.protocols.claims[{i}]"
        checker.metric(where, claim.metric)
        for side in ("faithful", "corrected"):
            checker.cell(f"{where}.{side}", getattr(claim, side))
        if claim.faithful.epoch == "faithful":
            raise ConfigError(f"{checker.path}: {where}.faithful.epoch: 'faithful' is for the corrected cell only")
    if not (checker.path.parent / protocols.file).exists():
        raise ConfigError(f"{checker.path}: report.protocols.file: {checker.path.parent / protocols.file} not "
                          "found")


def stem(spec: ProtocolSpec) -> str:
    return NAME


def write_one(chapter: Any, spec: ProtocolSpec, facts: dict[str, Any]) -> list[str]:
    import pandas as pd

    from harness.render import protocols
    from harness.render.axes import axis_name

    if absent := chapter.absent(*spec.rows):
        return chapter.omitted("protocols.tex", absent)
    original = pd.read_csv(chapter.study.path.parent / spec.file)
    rows = protocols.protocol_rows(chapter.frame, spec, original, chapter.study.axes, chapter.study.profile,
                                   chapter.names)
    if not rows:
        return chapter.omitted("protocols.tex", ["(no run of the original's protocol)"])
    return [chapter.write("protocols.tex", "protocols.tex.j2", spec=spec, rows=rows, facts=facts,
                          axes=[axis_name(a, chapter.names) for a in spec.rows],
                          several=len({r.claim for r in rows}) > 1, ns=sorted({r.n for r in rows}),
                          notes=[c for c in spec.claims if c.note])]


write = each(write_one)


def runs_behind(spec: ProtocolSpec, frame: Any, profile: str, order: Any) -> set[str]:
    from harness import aggregate

    found: set[str] = set()
    for claim in spec.claims:
        for cell in (claim.faithful, claim.corrected):
            runs = aggregate.strictly(frame, where_for(cell, profile))
            found |= set(aggregate.restrict(runs, [cell.metric or claim.metric])["run_id"])
    return found


def verify(spec: ProtocolSpec, rerun: Rerun) -> ItemCheck | None:
    from harness.render.compare import check_runs

    if rerun.wanted is None or NAME not in rerun.wanted:
        return None
    shown = list(dict.fromkeys(metric for claim in spec.claims for metric in
                               (claim.metric, claim.faithful.metric, claim.corrected.metric) if metric))
    return check_runs(f"{rerun.study}/{NAME}", NAME, rerun, set(rerun.reruns), shown)
