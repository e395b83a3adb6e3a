"""The read model's tables as SQLAlchemy Core ``Table`` objects, for the reports' queries."""

from __future__ import annotations

from nurture.store.db import StageTransition
from nurture.store.read_model import (
    DealOutcome,
    HandoffRecord,
    LeadRecord,
    SalesAssignment,
    TouchRecord,
    table_of,
)
from nurture.store.tracking import Visitor

LEAD = table_of(LeadRecord)
TRANSITION = table_of(StageTransition)
HANDOFF = table_of(HandoffRecord)
TURN = table_of(SalesAssignment)
TOUCH = table_of(TouchRecord)
OUTCOME = table_of(DealOutcome)
VISITOR = table_of(Visitor)
