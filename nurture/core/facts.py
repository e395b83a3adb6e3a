"""Which facts the read model gets, as functions of the lead's state.

Each function returns the facts to queue, in order; the workflow queues them unchanged (and
builds none in runs from before the read model). The lead's own counters are the one thing
they change: ``state.ledger_seq`` where a fact needs a new number (a version, or the key of a
score change without one), and ``state.ledger_flushes`` for a batch. Building a fact is
reporting it.

Keys are unique per lead and stable where a row is written again: see :func:`run_key` and
:func:`chain_key`. Versions only grow (:func:`next_version`), so a late write of an older
version never overwrites a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from nurture.contract.ledger import (
    AssignmentFact,
    ConsentFact,
    EventFact,
    Fact,
    FactBatch,
    HandoffFact,
    LeadSnapshot,
    OutcomeFact,
    ScoreCause,
    ScoreChangeFact,
    TopicChoiceFact,
    TouchFact,
    TouchStatus,
    TransitionFact,
)
from nurture.contract.messages import (
    Assignment,
    ConsentRecord,
    HeldTouch,
    LeadState,
    Outcome,
    TaskRef,
)
from nurture.core.handoff import handoff_status
from nurture.domain.cadence import CadenceProgress, touch_key
from nurture.domain.leads import LeadEvent
from nurture.domain.rules import CadenceStep
from nurture.domain.scoring import ScoreEntry
from nurture.domain.stages import SALES_STAGES

SNAPSHOT_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""``updated_at`` of a snapshot not yet written (set when it is: see :func:`batch`)."""


@dataclass(frozen=True)
class Stamp:
    """When and in which run a fact is made: the workflow's ``now`` and run ids, as values."""

    now: datetime
    run_id: str
    first_run_id: str
    """The first run of this chain of continue-as-new runs (``first_execution_run_id``)."""


def run_key(state: LeadState, stamp: Stamp, suffix: str) -> str:
    """A key for a fact made in this run (counters may restart after a reset or a restart of
    the lead; run ids do not repeat). Facts carried to the next run keep it."""
    return f"{state.lead_id}:{stamp.run_id[:12]}:{suffix}"


def chain_key(state: LeadState, stamp: Stamp, suffix: str) -> str:
    """A key for a row written again by later runs (a handoff, an SLA turn): stable across
    continue-as-new, new for a lead started again under the same id."""
    return f"{state.lead_id}:{stamp.first_run_id[:12]}:{suffix}"


def next_seq(state: LeadState) -> int:
    """The lead's next fact number (advances ``state.ledger_seq``)."""
    state.ledger_seq += 1
    return state.ledger_seq


def next_version(state: LeadState, now: datetime) -> int:
    """A version later than any given before, in this run or any earlier one, also after a
    workflow reset or a lead started again under the same id (which restart counters): the
    workflow clock in microseconds, then a counter for facts of the same moment."""
    micros = int(now.timestamp() * 1_000_000)
    return micros * 1000 + next_seq(state) % 1000


def event(
    state: LeadState, stamp: Stamp, applied: LeadEvent, entries: list[ScoreEntry]
) -> list[Fact]:
    """An applied event, and the score change its ``entries`` made (if any)."""
    points = sum(e.points for e in entries)
    # An event with an id is the same row whichever run (or restarted lead) applies it.
    key = (
        f"{state.lead_id}:ev:{applied.event_id}"
        if applied.event_id
        else run_key(state, stamp, f"e{state.events_applied}")
    )
    facts: list[Fact] = [
        EventFact(
            key=key,
            at=applied.at or stamp.now,
            received_at=stamp.now,
            type=applied.type,
            url=applied.url,
            campaign=applied.campaign,
            points=points,
            score_after=state.score.total,
        )
    ]
    detail = ", ".join(f"{e.rule} {e.points:+d}" for e in entries)
    return [*facts, *score(state, stamp, "event", points, detail, key=f"{key}:score")]


def score(
    state: LeadState, stamp: Stamp, cause: ScoreCause, delta: int, detail: str, key: str = ""
) -> list[Fact]:
    """A change of the score by ``delta`` (none when it did not change)."""
    if not delta:
        return []
    return [
        ScoreChangeFact(
            key=key or run_key(state, stamp, f"s{next_seq(state)}"),
            at=stamp.now,
            delta=delta,
            score_after=state.score.total,
            cause=cause,
            detail=detail,
        )
    ]


def touch(
    state: LeadState,
    stamp: Stamp,
    progress: CadenceProgress,
    cadence_id: str,
    step: CadenceStep,
    status: TouchStatus,
    detail: str | None,
    suffix: str = "",
    variant: str | None = None,
) -> list[Fact]:
    """What became of one cadence step (keyed like its email or task, plus ``suffix``), and
    which variant of an A/B-tested step it was."""
    return [
        TouchFact(
            key=touch_key(state.lead_id, progress, step) + suffix,
            at=stamp.now,
            cadence=cadence_id,
            step=step.name,
            cycle=progress.cycle,
            channel=step.channel,
            status=status,
            detail=detail,
            variant=variant,
        )
    ]


def held_touch_dropped(state: LeadState, stamp: Stamp, held: HeldTouch, why: str) -> list[Fact]:
    """A held touch skipped because its cadence ended (its own key: it was never sent)."""
    return [
        TouchFact(
            key=held.key,
            at=stamp.now,
            cadence=held.cadence,
            step=held.step,
            cycle=held.cycle,
            channel="email",
            status="skipped",
            detail=f"held ({held.reason}); dropped: {why}",
        )
    ]


def task_done(state: LeadState, stamp: Stamp, task: TaskRef, outcome: str, rep: str) -> list[Fact]:
    """Someone did a call/voicemail/direct-mail task (the task's own touch says it was
    queued; this row says it was done)."""
    return [
        TouchFact(
            key=f"{task.key}:done",
            at=stamp.now,
            cadence=task.cadence,
            step=task.step,
            cycle=state.cadence.cycle if state.cadence else 1,
            channel=task.channel,
            status="task_done",
            detail=f"{outcome} by {rep}",
        )
    ]


def transition(
    state: LeadState, stamp: Stamp, from_stage: str, to: str, by: str, reason: str
) -> list[Fact]:
    """A stage transition (or a re-chase within a stage), numbered by ``state.transitions``
    (already counted) and timed from ``state.stage_entered_at`` (not yet moved on)."""
    now, entered = stamp.now, state.stage_entered_at
    return [
        TransitionFact(
            key=run_key(state, stamp, f"t{state.transitions}"),
            at=now,
            from_stage=from_stage,
            to_stage=to,
            by=by,
            reason=reason,
            score=state.score.total,
            owner=state.owner,
            # A reassignment or a re-chase stays in the stage: its clock keeps running.
            seconds_in_from_stage=(
                (now - entered).total_seconds()
                if entered is not None and from_stage != to
                else None
            ),
            handoff=state.handoff.number
            if state.handoff and to in SALES_STAGES | {"won", "lost"}
            else None,
        )
    ]


def handoff(state: LeadState, stamp: Stamp, threshold: int) -> list[Fact]:
    """The current handoff as it stands (none before the first); its status follows from the
    lead's stage. ``threshold``: the rules' own, for handoffs made before it was kept."""
    current = state.handoff
    if current is None:
        return []
    status = handoff_status(state.stage)
    rejection = state.rejections[-1] if status == "rejected" and state.rejections else None
    story = current.story
    return [
        HandoffFact(
            key=chain_key(state, stamp, f"h{current.number}"),
            version=next_version(state, stamp.now),
            number=current.number,
            at=current.at,
            score=story.score,
            grade=story.grade,
            threshold=current.threshold if current.threshold is not None else threshold,
            instant=story.qualified_by.startswith("instant:"),
            qualified_by=story.qualified_by,
            campaign=story.campaign,
            segment=state.segment,
            rep=state.owner or (rejection.rep if rejection else None),
            touches_before=current.touches_before,
            status=status,
            status_at=None if status == "open" else state.stage_entered_at,
            reject_reason=rejection.reason if rejection else None,
            rejected_by=rejection.rep if rejection else None,
            misses=len(current.missed_by),
        )
    ]


def current_assignment(state: LeadState) -> Assignment | None:
    """The rep's turn with the lead now (the latest; none before the first handoff)."""
    return state.assignments[-1] if state.assignments else None


def assignment(state: LeadState, stamp: Stamp, index: int | None = None) -> list[Fact]:
    """The SLA turn ``index`` (1-based; the current one by default) as it stands."""
    index = index or len(state.assignments)
    if not 0 < index <= len(state.assignments):
        return []
    turn = state.assignments[index - 1]
    return [
        AssignmentFact(
            key=chain_key(state, stamp, f"a{index}"),
            version=next_version(state, stamp.now),
            handoff=turn.handoff or state.handoffs,
            rep=turn.rep,
            at=turn.at,
            due_at=turn.due_at,
            reason=turn.reason,
            responded_at=turn.responded_at,
            response=turn.response,
            seconds_to_response=(turn.responded_at - turn.at).total_seconds()
            if turn.responded_at
            else None,
            misses=turn.misses,
            first_missed_at=turn.first_missed_at,
            escalations=len(turn.escalated_to),
            escalated_to=", ".join(turn.escalated_to) or None,
            reassigned_to=turn.reassigned_to,
        )
    ]


def outcome(state: LeadState, stamp: Stamp, closed: Outcome, threshold: int) -> list[Fact]:
    """The deal's outcome, and the handoff it closes."""
    number = state.handoff.number if state.handoff else None
    won_or_lost = OutcomeFact(
        key=chain_key(state, stamp, f"h{number}:outcome"),
        at=closed.at,
        result=closed.result,
        amount=closed.amount,
        rep=closed.rep,
        handoff=number,
    )
    return [won_or_lost, *handoff(state, stamp, threshold)]


def consent(state: LeadState, stamp: Stamp, record: ConsentRecord) -> list[Fact]:
    """A consent record the lead received (one row each, never written again)."""
    return [
        ConsentFact(
            key=run_key(state, stamp, f"consent{next_seq(state)}"),
            **record.model_dump(include=set(ConsentFact.model_fields) - {"kind", "key"}),
        )
    ]


def topic_choices(state: LeadState, stamp: Stamp, left: set[str], rejoined: set[str]) -> list[Fact]:
    """The topics the person left and came back to in one change on the preferences page."""
    changed = [(topic, False) for topic in sorted(left)] + [(t, True) for t in sorted(rejoined)]
    return [
        TopicChoiceFact(
            key=run_key(state, stamp, f"topic{next_seq(state)}"),
            at=stamp.now,
            topic=topic,
            receives=receives,
        )
        for topic, receives in changed
    ]


def backfill(state: LeadState, stamp: Stamp, threshold: int) -> list[Fact]:
    """A lead from before the read model, in its first run that reports: what it is in the
    middle of (its current handoff, SLA turns and outcome) so the reports count it."""
    facts = [
        fact
        for index in range(1, len(state.assignments) + 1)
        for fact in assignment(state, stamp, index)
    ]
    if state.outcome is not None:
        return [*facts, *outcome(state, stamp, state.outcome, threshold)]
    return [*facts, *handoff(state, stamp, threshold)]


def snapshot(state: LeadState, workflow_id: str) -> LeadSnapshot:
    """The lead's row in the read model (version and time are set when it is written)."""
    profile = state.profile
    return LeadSnapshot(
        lead_id=state.lead_id,
        workflow_id=workflow_id,
        version=0,
        email=profile.email,
        name=profile.display_name,
        company=profile.company,
        title=profile.title,
        industry=profile.industry,
        country=profile.country,
        segment=state.segment,
        campaign=profile.campaign,
        stage=state.stage,
        stage_since=state.stage_entered_at,
        score=state.score.total,
        grade=state.grade,
        owner=state.owner,
        created_at=state.created_at,
        handoffs=state.handoffs,
        touches_sent=state.touches_sent,
        events=state.events_applied,
        outcome=state.outcome.result if state.outcome else None,
        amount=state.outcome.amount if state.outcome else None,
        closed_at=state.outcome.at if state.outcome else None,
        updated_at=SNAPSHOT_EPOCH,
    )


def batch(state: LeadState, row: LeadSnapshot, facts: list[Fact], now: datetime) -> FactBatch:
    """One write to the read model: ``facts`` and the lead's ``row``, versioned now (counts
    the write in ``state.ledger_flushes``)."""
    state.ledger_flushes += 1
    return FactBatch(
        lead_id=state.lead_id,
        lead=row.model_copy(update={"version": next_version(state, now), "updated_at": now}),
        facts=facts,
    )
