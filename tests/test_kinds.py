"""kinds: every kind of report item goes through one interface, and every item a study file declares
belongs to exactly one kind (a field added to the report schema without a kind fails here)."""

from __future__ import annotations

import pytest

from harness import spec
from harness import kinds
from harness.render import items
from harness.report import ReportSpec

INTERFACE = ("NAME", "FIELD", "FIELD_TYPE", "FIELD_DEFAULT", "SECTION", "check", "stem", "write", "runs_behind",
             "verify")


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.NAME)
def test_each_kind_offers_the_whole_interface(kind):
    assert all(hasattr(kind, name) for name in INTERFACE), [n for n in INTERFACE if not hasattr(kind, n)]


def test_every_declared_item_belongs_to_one_kind():
    fields = set(ReportSpec.model_fields) - {"axis_labels", "answered_by"}  # the two that are not items
    for name in spec.list_studies():
        report = spec.load(name, "quick", components=False).spec.report
        declared = sum(len(value) if isinstance(value, list) else value is not None
                       for value in (getattr(report, f) for f in fields))
        found = kinds.items(report)
        assert len(found) == declared, name
        assert len({items.names(report).count(n) for n in items.names(report)}) == 1  # names are unique
    assert fields == {kind.FIELD for kind in kinds.KINDS}  # the report schema is the kinds' fields


def test_a_count_word_after_a_value_of_one_is_singular():
    from harness.kinds.claim import sentence_tex

    text = sentence_tex("{a.train.epochs} epochs, {n} seeds over {a.x} classes", "s", "c",
                        {"a.train.epochs": "1", "n": "5", "a.x": "1"})
    assert text == ("\\claimval{s}{c}{a.train.epochs} epoch, \\claimval{s}{c}{n} seeds over "
                    "\\claimval{s}{c}{a.x} class")
