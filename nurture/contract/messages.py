"""Data that crosses the workflow boundary: workflow input and state, update requests, and the
requests/results of activities. Pydantic models, carried by Temporal's pydantic converter.

Field additions must keep defaults: running leads carry these objects across continue-as-new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import SQLModel

from nurture.contract.ledger import Fact, StageMove
from nurture.domain.cadence import CadenceProgress
from nurture.domain.leads import ConsentGiven, LaterFieldsOmitted, LeadEvent, LeadProfile
from nurture.domain.routing import RepLimits, RouteDecision
from nurture.domain.rules import TOPIC_PATTERN, Sender
from nurture.domain.scoring import ScoreCard, ScoreEntry
from nurture.domain.stages import Stage
from nurture.domain.tasks import TaskChannel, TaskStatus

TASK_QUEUE = "nurture-leads"

# Activity names, so workflow modules never import activity code (it pulls in SQLAlchemy).
LOAD_RULES = "load_rules"
SEND_EMAIL = "send_email"
ASSIGN_REP = "assign_rep"
RECORD_TRANSITION = "record_transition"
CREATE_TASK = "create_task"
CLOSE_TASK = "close_task"
CRM_UPSERT_LEAD = "crm_upsert_lead"
CRM_ADD_TASK = "crm_add_task"

TIMELINE_KEPT = 200
TASKS_KEPT = 50
MARKETING_SENDS_KEPT = 50  # enough for any frequency cap (FrequencyCap.max_emails <= 50)
CONSENTS_KEPT = 20  # the latest consent records (the read model keeps them all)
TOPICS_MAX = 100
SEEN_EVENT_IDS_KEPT = 5000
"""The de-duplication window: a client may retry a batch of this many events and each still
counts once. Kept as 16-hex-digit digests (~95 KB), carried across continue-as-new."""


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    detail: str


class Story(BaseModel):
    """What a rep needs to act: where the lead came from and why it is sales-ready now."""

    campaign: str | None
    qualified_by: str
    score: int
    grade: str
    fit: dict[str, int]
    top_behaviours: list[tuple[str, int, int]]
    recent: list[ScoreEntry]


class Escalation(BaseModel):
    at: datetime
    missed_by: str
    miss_number: int
    notified: list[str]
    reassigned_to: str | None


class Handoff(BaseModel):
    number: int
    at: datetime
    route: RouteDecision
    story: Story
    threshold: int | None = None
    touches_before: int = 0
    sla_due_at: datetime | None = None
    contacted_at: datetime | None = None
    missed_by: list[str] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)


class Assignment(BaseModel):
    """One rep's turn with the lead and how its SLA clock ended (reported to the read model).

    Its own declaration, not ``nurture.contract.ledger.RepTurn`` (the fact's and the row's):
    this is part of the state every running lead carries across continue-as-new, and its JSON
    key order (``rep`` first) differs from the fact's (``handoff`` first), so neither can derive
    from the other without changing what a history holds. The workflow appends escalations to
    ``escalated_to`` as they happen; the fact keeps their count and the names joined.
    ``handoff`` is None only for turns from before it was kept. ``nurture.core.facts.assignment``
    reports one of these as an ``AssignmentFact``."""

    rep: str
    at: datetime
    reason: str
    handoff: int | None = None
    due_at: datetime | None = None
    responded_at: datetime | None = None
    response: str | None = None
    misses: int = 0
    first_missed_at: datetime | None = None
    escalated_to: list[str] = Field(default_factory=list)
    reassigned_to: str | None = None


class Rejection(BaseModel):
    at: datetime
    rep: str
    reason: str


class Outcome(BaseModel):
    result: Literal["won", "lost"]
    amount: float | None = None
    at: datetime
    rep: str


class HeldTouch(BaseModel):
    """A touch whose email cannot be rendered (a template error): it keeps its place in the
    cadence and is tried again once the rules version changes (checked hourly)."""

    key: str
    cadence: str
    step: str
    cycle: int
    label: str
    reason: str
    since: datetime
    rules_version: str
    checks: int = 0
    """Hourly checks since it was held (tries again only when the rules changed)."""


class TaskRef(BaseModel):
    """A task of this lead in the inside-sales queue, as the workflow knows it."""

    key: str
    id: int | None = None
    channel: TaskChannel
    cadence: str
    step: str
    due_at: datetime
    status: TaskStatus = "open"
    outcome: str | None = None
    closed_by: str | None = None


class ConsentRecord(ConsentGiven):
    """A consent the lead keeps: as it was given, when it was given (``at``: when the lead
    received it, unless the sender said) and when the lead recorded it."""

    at: datetime  # type: ignore[assignment]  # always known once recorded
    recorded_at: datetime


class Preferences(BaseModel):
    """What the person chose on the preferences page: the topics they left (a topic added to
    cadences.yaml later is received until they leave it too)."""

    topics_left: list[str] = Field(default_factory=list)
    changed_at: datetime | None = None
    changes: int = 0


class PreferenceChange(BaseModel):
    """The person's choice from the preferences page (the ``preferences`` update): the topics
    they do not want. ``request_id`` is the page's, so a form sent twice counts once."""

    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    topics_left: list[Annotated[str, Field(pattern=TOPIC_PATTERN)]] = Field(
        default_factory=list, max_length=TOPICS_MAX
    )


class LeadState(LaterFieldsOmitted):
    """Everything a lead workflow knows; returned whole by the ``state`` query."""

    lead_id: str
    profile: LeadProfile
    stage: Stage = "nurturing"
    owner: str | None = None
    score: ScoreCard = Field(default_factory=ScoreCard)
    grade: str = "D"
    email_suppressed: str | None = None
    segment: str | None = None
    cadence: CadenceProgress | None = None
    enrolments: int = 0
    handoffs: int = 0
    handoff: Handoff | None = None
    assignments: list[Assignment] = Field(default_factory=list)
    rejections: list[Rejection] = Field(default_factory=list)
    outcome: Outcome | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    touches_sent: int = 0
    touches_skipped: int = 0
    touches_deferred: int = 0
    held_touch: HeldTouch | None = None
    """The touch waiting for a template fix, if any (shown by ``nurture show`` and audit)."""
    marketing_sends: list[datetime] = Field(default_factory=list)
    tasks: list[TaskRef] = Field(default_factory=list)
    events_applied: int = 0
    duplicates_ignored: int = 0
    seen_event_markers: list[str] = Field(default_factory=list)
    unforwarded: list[str] = Field(default_factory=list)
    last_forward_at: datetime | None = None
    transitions: int = 0
    """Stage transitions (and re-chases) so far; in runs from before keys were derived from
    what happened (``nurture/core/idempotency.py``) it also numbered alerts and CRM pushes."""
    rules_version: str = ""
    runs: int = 1
    last_error: str | None = None
    created_at: datetime | None = None
    stage_entered_at: datetime | None = None
    ledger_seq: int = 0
    """Numbers handed to read-model facts so far (keys, and ties between versions)."""
    ledger_flushes: int = 0
    """Batches written to the read model so far (0: this lead has not reported yet)."""
    LATER_FIELDS = ("consents", "preferences", "variants")
    consents: list[ConsentRecord] = Field(default_factory=list)
    """How and when the person agreed to be emailed, oldest first (the latest CONSENTS_KEPT)."""
    preferences: Preferences | None = None
    """The person's choices on the preferences page (None: never chose)."""
    variants: dict[str, str] = Field(default_factory=dict)
    """A/B-tested steps' variants drawn for this lead, by ``cadence/step``: drawn when it first
    enrols in the cadence and kept, so later weight changes leave it where it was
    (``nurture.domain.variants``)."""

    def topic_left(self, topic: str | None) -> bool:
        """Whether the person chose not to receive emails about ``topic``."""
        return (
            topic is not None
            and self.preferences is not None
            and (topic in self.preferences.topics_left)
        )

    def note(self, at: datetime, kind: str, detail: str) -> None:
        self.timeline.append(TimelineEntry(at=at, kind=kind, detail=detail))
        del self.timeline[:-TIMELINE_KEPT]

    def task(self, key: str) -> TaskRef | None:
        return next((t for t in self.tasks if t.key == key), None)


class LeadInput(BaseModel):
    """Start (or continue-as-new) input. ``state`` and ``pending`` carry a lead across runs."""

    lead_id: str
    state: LeadState | None = None
    pending: list[LeadEvent | LeadProfile] = Field(default_factory=list)
    pending_effects: list[Effect] = Field(default_factory=list)
    pending_facts: list[Fact] = Field(default_factory=list)
    suppressed: str | None = None
    """Why the lead's address was on the suppression list when the lead was started (e.g.
    ``erased (erasure)``): a new lead is then created suppressed and never emailed."""


# --- rep actions (updates) ------------------------------------------------------------------


class RepAction(BaseModel):
    rep: str = Field(min_length=1)
    note: str | None = None
    from_crm: bool = Field(default=False, description="the CRM told us; do not echo it back")


class RejectRequest(RepAction):
    reason: str = Field(min_length=3, description="why sales returns the lead")


class OutcomeRequest(RepAction):
    result: Literal["won", "lost"]
    amount: float | None = Field(default=None, ge=0)


class TaskCompletion(RepAction):
    """The outcome of a call/voicemail/direct-mail task, recorded by whoever did it."""

    task_key: str = Field(min_length=1)
    outcome: str = Field(min_length=1)


class ActionResult(BaseModel):
    lead_id: str
    stage: Stage
    owner: str | None


# --- activities -----------------------------------------------------------------------------


class LoadRulesRequest(LaterFieldsOmitted):
    LATER_FIELDS = ("by_version",)

    known_version: str = ""
    by_version: bool = False
    """Answer with the version of the rules rather than the rules, where every worker can find
    them by it (``nurture.contract.shared_rules``)."""


EmailCategory = Literal["touch", "handoff", "escalation", "reassigned", "activity"]


class EmailRequest(LaterFieldsOmitted):
    """One email to send exactly once; ``key`` is its idempotency key."""

    LATER_FIELDS = ("variant",)
    kind: Literal["email"] = "email"
    key: str
    lead_id: str
    category: EmailCategory
    to_email: str
    to_name: str | None = None
    sender: Sender
    template: str
    subject: str
    context: dict[str, Any] = Field(default_factory=dict)
    variant: str | None = None
    """An A/B-tested step's variant (sent to SendGrid as the ``variant`` custom arg)."""


class EmailResult(BaseModel):
    key: str
    message_id: str | None
    status: Literal["sent", "already_sent", "suppressed"]
    detail: str | None = None


class AssignRequest(BaseModel):
    key: str
    lead_id: str
    pool: str
    candidates: list[str]
    strategy: str
    reps: list[RepLimits] = Field(default_factory=list)
    """Caps and away periods of the candidates, their managers and the fallback owner
    (``nurture.domain.routing.rep_limits``); empty (requests from before): nobody is skipped."""
    fallback_owner: str | None = None
    """Takes the lead when every candidate and the first one's manager are unavailable."""
    exclude: list[str] = Field(default_factory=list)
    """Reps who must not get the lead whatever else holds: its owner and those who already
    missed its SLA. With everyone excluded the activity answers None (nobody takes it)."""


class _TransitionRecordKey(SQLModel):
    kind: Literal["transition"] = "transition"
    key: str
    lead_id: str
    workflow_id: str


class TransitionRecord(StageMove, _TransitionRecordKey):
    """A stage move written by the ``record_transition`` activity: only runs from before the
    read-model ledger send it (later ones report a ``TransitionFact``). Its keys come first in
    its JSON, then the move's fields (see ``nurture.contract.ledger`` on the order of bases)."""


class TaskRequest(BaseModel):
    """Put one task in the inside-sales queue, exactly once (``key``)."""

    key: str
    lead_id: str
    channel: TaskChannel
    cadence: str
    step: str
    title: str
    instructions: str = ""
    phone: str | None = None
    address: str | None = None
    due_at: datetime
    context: dict[str, Any] = Field(default_factory=dict)


class TaskClosure(BaseModel):
    kind: Literal["task"] = "task"
    key: str
    lead_id: str
    status: TaskStatus
    at: datetime
    by: str
    outcome: str | None = None
    note: str | None = None


class CrmLeadUpsert(BaseModel):
    """Create or update the lead in the CRM by its external id (our lead id): idempotent."""

    kind: Literal["crm_lead"] = "crm_lead"
    key: str
    lead_id: str
    fields: dict[str, Any]


class CrmNote(BaseModel):
    """Activity forwarded to the CRM as a completed Task on the lead, once (``key``)."""

    kind: Literal["crm_task"] = "crm_task"
    key: str
    lead_id: str
    subject: str
    description: str


Effect = Annotated[
    EmailRequest | TransitionRecord | TaskClosure | CrmLeadUpsert | CrmNote,
    Field(discriminator="kind"),
]

LeadInput.model_rebuild()
