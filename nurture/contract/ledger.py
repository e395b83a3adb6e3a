"""Facts a lead workflow reports to the read model, in the order they happened.

Pydantic models with no database behind them (workflow code builds them). The workflow queues
facts as the lead lives and a local activity writes them in batches (``activities.records``).
Each fact has a key unique per lead, so a retried batch never double-counts. Rows that change
over time (the lead, a handoff, an assignment's SLA clock) are written whole with a ``version``:
an older write arriving late never overwrites a newer one.

A shape that a fact, a workflow message and a read-model row all carry is declared here once
(``StageMove``, ``RepTurn``), and the others derive from it: the facts and messages add their
keys, the tables in ``nurture.store`` (``table=True`` subclasses) add theirs with the columns'
bounds and indexes. These shapes are SQLModel models without a table, so that type checkers see
the inherited fields in the tables' constructors (a table class sees only the fields of SQLModel
bases). Without a table a SQLModel model is a pydantic model: building one maps nothing and opens
nothing, and the workflow imports this module passed through its sandbox, as it does every
module here. The shapes carry no length limit: the workflow builds them from whatever it holds,
and a limit here would fail it on a value it takes today; the writer cuts a value to its column
instead.

Field order is the JSON key order of every fact in recorded histories (``tests/histories``), so
it must not move. Pydantic lays the fields out base by base from the *last* base listed, then the
class's own: ``class TransitionFact(LedgerStageMove, FactKey)`` is ``kind, key``, then the
move's fields. That is why the keys come last in the list of bases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from sqlmodel import SQLModel

from nurture.domain.leads import LaterFieldsOmitted

RECORD_FACTS = "record_facts"
FACTS_PER_BATCH = 200

HandoffStatus = Literal["open", "accepted", "rejected", "won", "lost"]
TouchStatus = Literal[
    "sent", "skipped", "suppressed", "failed", "task", "task_done", "task_skipped", "held"
]
"""``task`` when a call/voicemail/direct-mail task is queued, ``task_done`` when someone did it;
``held`` (key ``<touch key>:held``) when its email could not be rendered: the touch waits for a
template fix, and its own key is written once it is sent (or deliberately skipped)."""
HELD_SUFFIX = ":held"
ScoreCause = Literal["event", "decay", "fit", "reset"]


class LeadSnapshot(BaseModel):
    """The lead as it is now: one row per lead in the read model."""

    lead_id: str
    workflow_id: str
    version: int
    email: str | None = None
    name: str | None = None
    company: str | None = None
    title: str | None = None
    industry: str | None = None
    country: str | None = None
    segment: str | None = None
    campaign: str | None = None
    stage: str
    stage_since: datetime | None = None
    score: int
    grade: str
    owner: str | None = None
    created_at: datetime | None = None
    handoffs: int = 0
    touches_sent: int = 0
    events: int = 0
    outcome: str | None = None
    amount: float | None = None
    closed_at: datetime | None = None
    updated_at: datetime


class EventFact(BaseModel):
    kind: Literal["event"] = "event"
    key: str
    at: datetime
    received_at: datetime
    type: str
    url: str | None = None
    campaign: str | None = None
    points: int
    score_after: int


class ScoreChangeFact(BaseModel):
    kind: Literal["score"] = "score"
    key: str
    at: datetime
    delta: int
    score_after: int
    cause: ScoreCause
    detail: str


class FactKey(SQLModel):
    """What a fact begins with: its kind (the ``Fact`` union's tag; each fact narrows it to its
    own literal) and its key, unique per lead."""

    kind: str
    key: str


class StageMove(SQLModel):
    """A lead's move from one stage to another, or a re-chase within one (``from_stage`` equals
    ``to_stage``), as every record of it says it: the ``TransitionFact``, the
    ``TransitionRecord`` of runs from before the ledger (``nurture.contract.messages``) and the
    ``stagetransition`` row (``nurture.store.db.StageTransition``)."""

    at: datetime
    from_stage: str | None
    to_stage: str
    by: str
    reason: str
    score: int
    owner: str | None


class LedgerStageMove(StageMove):
    """The move as the read model keeps it since the ledger: the fact and the row."""

    seconds_in_from_stage: float | None = None
    """How long the lead had been in ``from_stage``: time in stage, for the funnel report."""
    handoff: int | None = None
    """The handoff the lead was in when it moved (sales stages), else None."""


class TransitionFact(LedgerStageMove, FactKey):
    kind: Literal["transition"] = "transition"


class HandoffFact(BaseModel):
    """One handoff to sales, as it stands (written again whenever it changes)."""

    kind: Literal["handoff"] = "handoff"
    key: str
    version: int
    number: int
    at: datetime
    score: int
    grade: str
    threshold: int
    instant: bool
    qualified_by: str
    campaign: str | None = None
    segment: str | None = None
    rep: str | None = None
    touches_before: int = 0
    status: HandoffStatus = "open"
    status_at: datetime | None = None
    reject_reason: str | None = None
    rejected_by: str | None = None
    misses: int = 0


class RepTurn(SQLModel):
    """One rep's turn with a handed-off lead and its SLA clock, as the read model keeps it
    (written again, with a newer ``version``, as it changes): the ``AssignmentFact`` and the
    ``salesassignment`` row (``nurture.store.read_model.SalesAssignment``).

    ``responded_at`` is the rep's first accept, contact or reject; it is in time when it came
    before ``due_at`` and no miss was recorded.

    The lead's own record of the turn, ``nurture.contract.messages.Assignment``, is not derived
    from this: it is part of every running lead's state, whose JSON keeps its own field order,
    and it holds the escalations as a list (here their count and the names joined) and the
    handoff only when known (here always, the lead's latest for a turn from before).
    ``nurture.core.facts.assignment`` makes one of these from it."""

    version: int
    handoff: int
    rep: str
    at: datetime
    due_at: datetime | None = None
    reason: str
    responded_at: datetime | None = None
    response: str | None = None
    seconds_to_response: float | None = None
    misses: int = 0
    first_missed_at: datetime | None = None
    escalations: int = 0
    escalated_to: str | None = None
    reassigned_to: str | None = None


class AssignmentFact(RepTurn, FactKey):
    kind: Literal["assignment"] = "assignment"


class TouchFact(LaterFieldsOmitted):
    """One nurture step carried out (an email sent or not, a task queued or skipped)."""

    LATER_FIELDS = ("variant",)
    kind: Literal["touch"] = "touch"
    key: str
    at: datetime
    cadence: str
    step: str
    cycle: int
    channel: str
    status: TouchStatus
    detail: str | None = None
    variant: str | None = None
    """The version of an A/B-tested email step the lead got (None: not an A/B step)."""


class OutcomeFact(BaseModel):
    kind: Literal["outcome"] = "outcome"
    key: str
    at: datetime
    result: Literal["won", "lost"]
    amount: float | None = None
    rep: str
    handoff: int | None = None


class ConsentEvidence(SQLModel):
    """One consent record as the read model keeps it: the ``ConsentFact`` and the ``consent``
    row (``nurture.store.read_model.ConsentRow``); the lead's own is
    ``nurture.contract.messages.ConsentRecord`` (the edge's model, validated where it came in).
    ``text`` and ``ip`` are the person's data."""

    at: datetime
    recorded_at: datetime
    source: str
    version: str | None = None
    text: str | None = None
    ip: str | None = None


class ConsentFact(ConsentEvidence, FactKey):
    kind: Literal["consent"] = "consent"


class TopicChoice(SQLModel):
    """The person's choice about one topic on the preferences page: the ``TopicChoiceFact``
    and the ``topicchoice`` row (one per topic whose choice changed)."""

    at: datetime
    topic: str
    receives: bool


class TopicChoiceFact(TopicChoice, FactKey):
    kind: Literal["topic_choice"] = "topic_choice"


Fact = Annotated[
    EventFact
    | ScoreChangeFact
    | TransitionFact
    | HandoffFact
    | AssignmentFact
    | TouchFact
    | OutcomeFact
    | ConsentFact
    | TopicChoiceFact,
    Field(discriminator="kind"),
]


class FactBatch(BaseModel):
    """What one ``record_facts`` call writes, in one transaction."""

    lead_id: str
    lead: LeadSnapshot
    facts: list[Fact] = Field(default_factory=list)
