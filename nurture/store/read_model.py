"""The read model the reports and the dashboard query: one row per lead, plus what happened to
it (events, score changes, stage transitions in ``nurture.db``, handoffs, SLA clocks, touches,
outcomes) and what marketing spent (campaigns and their costs).

Written only by the ``record_facts`` activity from the facts each lead workflow reports
(``nurture.contract.ledger``). Times are stored in UTC (SQLModel's ``UTCDateTime``: timestamptz on
PostgreSQL). Durations the reports need (time in stage, time to respond) are stored
when the row is written, so no report needs dialect-specific date arithmetic.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Index, Table, UniqueConstraint
from sqlmodel import Field, SQLModel

from nurture.contract.ledger import ConsentEvidence, RepTurn, TopicChoice
from nurture.store.clock import utcnow
from nurture.store.personal import PERSONAL


class LeadRecord(SQLModel, table=True):
    __tablename__ = "lead"
    __table_args__ = (Index("ix_lead_campaign_created", "campaign", "created_at"),)

    lead_id: str = Field(primary_key=True, max_length=200)
    workflow_id: str = Field(max_length=220)
    version: int = Field(default=0, sa_type=BigInteger)  # see LeadWorkflow._next_version
    email: str | None = Field(default=None, max_length=320, sa_column_kwargs=PERSONAL)
    name: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    company: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    title: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    industry: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=100)
    segment: str | None = Field(default=None, index=True, max_length=64)
    campaign: str | None = Field(default=None, max_length=200)
    stage: str = Field(index=True, max_length=20)
    stage_since: datetime | None = None
    score: int = 0
    grade: str = Field(default="D", max_length=2)
    owner: str | None = Field(default=None, index=True, max_length=100)
    created_at: datetime | None = Field(default=None, index=True)
    handoffs: int = 0
    touches_sent: int = 0
    events: int = 0
    outcome: str | None = Field(default=None, max_length=10)
    amount: float | None = None
    closed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class LeadEventRecord(SQLModel, table=True):
    """Every behaviour applied to a lead (duplicates are not: the workflow ignored them)."""

    __tablename__ = "leadevent"
    __table_args__ = (
        Index("ix_leadevent_lead_at", "lead_id", "at"),
        Index("ix_leadevent_campaign_at", "campaign", "at"),
    )

    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(max_length=200)
    type: str = Field(index=True, max_length=64)
    at: datetime = Field(index=True)
    received_at: datetime
    url: str | None = Field(default=None, sa_column_kwargs=PERSONAL)  # may carry ?email=
    campaign: str | None = Field(default=None, max_length=200)
    points: int = 0
    score_after: int = 0


class ScoreChange(SQLModel, table=True):
    __tablename__ = "scorechange"
    __table_args__ = (Index("ix_scorechange_lead_at", "lead_id", "at"),)

    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(max_length=200)
    at: datetime = Field(index=True)
    delta: int
    score_after: int
    cause: str = Field(max_length=20)
    detail: str = Field(default="", sa_column_kwargs=PERSONAL)  # fit matches on the profile


class HandoffRecord(SQLModel, table=True):
    """One handoff to sales and what sales did with it."""

    __tablename__ = "handoff"

    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    version: int = Field(default=0, sa_type=BigInteger)  # see LeadWorkflow._next_version
    number: int
    at: datetime = Field(index=True)
    score: int
    grade: str = Field(max_length=2)
    threshold: int
    instant: bool = False
    qualified_by: str = ""
    campaign: str | None = Field(default=None, index=True, max_length=200)
    segment: str | None = Field(default=None, max_length=64)
    rep: str | None = Field(default=None, max_length=100)
    touches_before: int = 0
    status: str = Field(default="open", index=True, max_length=10)
    status_at: datetime | None = None
    reject_reason: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    rejected_by: str | None = Field(default=None, max_length=100)
    misses: int = 0


class _SalesAssignmentKey(SQLModel):
    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)


class SalesAssignment(RepTurn, _SalesAssignmentKey, table=True):
    """One rep's turn with a handed-off lead, and how the SLA clock ended for it
    (``nurture.contract.ledger.RepTurn``): its columns are the turn's fields after the row's key
    and lead. Only column bounds, indexes and defaults of the turn's fields are added here."""

    __tablename__ = "salesassignment"
    __table_args__ = (Index("ix_salesassignment_rep_at", "rep", "at"),)

    version: int = Field(default=0, sa_type=BigInteger)  # see LeadWorkflow._next_version
    rep: str = Field(max_length=100)
    at: datetime = Field(index=True)
    reason: str = ""
    response: str | None = Field(default=None, max_length=20)
    reassigned_to: str | None = Field(default=None, max_length=100)


class TouchRecord(SQLModel, table=True):
    __tablename__ = "touch"
    __table_args__ = (
        Index("ix_touch_lead_status_at", "lead_id", "status", "at"),
        Index("ix_touch_cadence_step", "cadence", "step"),  # an A/B test's touches
    )

    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(max_length=200)
    at: datetime = Field(index=True)
    cadence: str = Field(max_length=64)
    step: str = Field(max_length=64)
    cycle: int = 1
    channel: str = Field(max_length=20)
    status: str = Field(index=True, max_length=20)
    detail: str | None = Field(default=None, sa_column_kwargs=PERSONAL)  # provider errors
    variant: str | None = Field(default=None, max_length=32)  # of an A/B-tested step


class DealOutcome(SQLModel, table=True):
    """Won or lost, with the amount: what closes the loop."""

    __tablename__ = "outcome"

    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    at: datetime = Field(index=True)
    result: str = Field(max_length=10)
    amount: float | None = None
    rep: str = Field(max_length=100)
    handoff: int | None = None


PERSONAL = {"info": {"personal": True}}
"""A column holding the person's data (``nurture/store/personal.py``'s convention)."""


class _LeadFactKey(SQLModel):
    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)


class ConsentRow(ConsentEvidence, _LeadFactKey, table=True):
    """How and when a person agreed to be emailed (every record a lead received)."""

    __tablename__ = "consent"

    at: datetime = Field(index=True)
    source: str = Field(max_length=20)
    version: str | None = Field(default=None, max_length=64)
    text: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    ip: str | None = Field(default=None, max_length=64, sa_column_kwargs=PERSONAL)


class TopicChoiceRow(TopicChoice, _LeadFactKey, table=True):
    """A person's choice about one topic on the preferences page (one row per change)."""

    __tablename__ = "topicchoice"

    at: datetime = Field(index=True)
    topic: str = Field(max_length=64)


class Campaign(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=200)
    channel: str | None = Field(default=None, max_length=64)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class CampaignCost(SQLModel, table=True):
    """What a campaign cost over a period (``period_end`` exclusive); reports prorate a cost
    over the part of its period they cover."""

    __tablename__ = "campaigncost"
    __table_args__ = (UniqueConstraint("campaign", "period_start", "period_end"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(index=True, max_length=200)
    period_start: date
    period_end: date
    amount: float
    currency: str = Field(default="USD", max_length=3)
    note: str = ""
    recorded_at: datetime = Field(default_factory=utcnow)


def table_of(model: type[SQLModel]) -> Table:
    """A table model's SQLAlchemy Core ``Table`` (for bulk statements and report queries)."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]
