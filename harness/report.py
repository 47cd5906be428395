"""The report schema of a study file (its `report:` section): each kind of item is a plug-in in harness/kinds/
with its own schema and checks; this module is where the spec stage and the rest of the harness read them."""

from __future__ import annotations

from harness.kinds import ReportSpec, check_report  # noqa: F401 (the report schema's entry points)
from harness.kinds.claim import (  # noqa: F401
    CONFIG_PLACEHOLDER, FIELDS, LABEL_PLACEHOLDER, NOT_TESTABLE, OUTCOMES, ClaimCell, ClaimSpec, words)
from harness.kinds.figure import FigureSpec  # noqa: F401
from harness.kinds.protocols import ProtocolCell, ProtocolClaim, ProtocolSpec  # noqa: F401
from harness.kinds.reference import Comparison, ReferenceSpec  # noqa: F401
from harness.kinds.shared import SelectSpec, where_for  # noqa: F401
from harness.kinds.table import TableSpec  # noqa: F401
