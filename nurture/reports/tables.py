"""The read model's tables as SQLAlchemy Core ``Table`` objects, for the reports' queries."""

from __future__ import annotations

from nurture.store.db import SalesTask, StageTransition, WebhookEvent
from nurture.store.read_model import (
    DealOutcome,
    HandoffRecord,
    LeadEventRecord,
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
LEAD_EVENT = table_of(LeadEventRecord)
WEBHOOK_EVENT = table_of(WebhookEvent)
SALES_TASK = table_of(SalesTask)
