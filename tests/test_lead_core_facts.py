"""The read-model facts a lead reports, as plain functions (no Temporal, no clock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.contract.ledger import (
    AssignmentFact,
    Fact,
    HandoffFact,
    OutcomeFact,
    ScoreChangeFact,
    TouchFact,
    TransitionFact,
)
from nurture.contract.messages import (
    Assignment,
    HeldTouch,
    LeadState,
    Outcome,
    Rejection,
    TaskRef,
)
from nurture.core import facts
from nurture.core.handoff import handoff_status
from nurture.domain.cadence import CadenceProgress, touch_key
from nurture.domain.leads import LeadEvent
from nurture.domain.rules import CadenceStep
from nurture.domain.scoring import ScoreEntry
from nurture.domain.stages import STAGES
from tests.lead_states import LEAD, T0, a_handoff, a_lead, handed_off, lead_states

STAMP = facts.Stamp(T0, run_id="0123456789abcdef-run", first_run_id="fedcba9876543210-first")
STEP = CadenceStep(name="welcome", delay=timedelta(0), template="welcome.html", subject="Hi")
PROGRESS = CadenceProgress(cadence_id="general", enrolment=2, cycle=3)
BOOKKEEPING = {"ledger_seq", "ledger_flushes"}
"""The only fields building facts may change: the lead's fact counters."""


# --- today's keys: running leads' rows are upserted by these strings -------------------------


def test_fact_keys_keep_the_strings_running_leads_already_wrote() -> None:
    state = handed_off()
    state.transitions, state.events_applied = 7, 4
    assert facts.transition(state, STAMP, "nurturing", "assigned", "routing", "x")[0].key == (
        "lead-1:0123456789ab:t7"
    )
    anonymous = LeadEvent(lead_id=LEAD, type="page_view")
    event_keys = [f.key for f in facts.event(state, STAMP, anonymous, [_entry(5)])]
    assert event_keys == ["lead-1:0123456789ab:e4", "lead-1:0123456789ab:e4:score"]
    with_id = LeadEvent(lead_id=LEAD, type="page_view", event_id="abc")
    assert facts.event(state, STAMP, with_id, [])[0].key == "lead-1:ev:abc"
    assert facts.score(state, STAMP, "decay", -3, "d")[0].key == "lead-1:0123456789ab:s1"
    assert facts.handoff(state, STAMP, 60)[0].key == "lead-1:fedcba987654:h1"
    assert facts.assignment(state, STAMP)[0].key == "lead-1:fedcba987654:a1"
    closed = Outcome(result="won", amount=10.0, at=T0, rep="alice")
    assert facts.outcome(state, STAMP, closed, 60)[0].key == "lead-1:fedcba987654:h1:outcome"


def test_a_touch_fact_has_its_emails_idempotency_key_and_a_held_one_its_own() -> None:
    state = a_lead()
    sent = facts.touch(state, STAMP, PROGRESS, "general", STEP, "sent", None)
    held = facts.touch(state, STAMP, PROGRESS, "general", STEP, "held", "bad", suffix=":held")
    assert sent[0].key == touch_key(LEAD, PROGRESS, STEP) == "touch:lead-1:general:e2:c3:welcome"
    assert held[0].key == "touch:lead-1:general:e2:c3:welcome:held"


def test_a_version_is_the_clock_in_microseconds_then_the_leads_counter() -> None:
    state = a_lead()
    state.ledger_seq = 1998
    micros = int(T0.timestamp() * 1_000_000)
    assert facts.next_version(state, T0) == micros * 1000 + 999
    assert facts.next_version(state, T0) == micros * 1000 + 0  # the counter wraps: 2000
    assert state.ledger_seq == 2000


# --- what each fact says ------------------------------------------------------------------


def test_handoff_status_follows_the_stage() -> None:
    assert {stage: handoff_status(stage) for stage in STAGES} == {
        "assigned": "open",
        "working": "accepted",
        "won": "won",
        "lost": "lost",
        "nurturing": "rejected",
        "recycled": "rejected",
        "suppressed": "rejected",
    }


def test_a_rejected_handoff_names_the_rep_who_rejected_it_and_why() -> None:
    state = handed_off(stage="recycled")
    state.owner = None
    state.stage_entered_at = T0 + timedelta(hours=1)
    state.rejections.append(Rejection(at=T0, rep="alice", reason="no budget"))
    [fact] = facts.handoff(state, STAMP, 60)
    assert isinstance(fact, HandoffFact)
    assert (fact.status, fact.rep, fact.rejected_by, fact.reject_reason) == (
        "rejected",
        "alice",
        "alice",
        "no budget",
    )
    assert fact.status_at == T0 + timedelta(hours=1)


def test_an_open_handoff_has_no_status_time_and_an_old_one_the_rules_threshold() -> None:
    state = handed_off()
    state.stage_entered_at = T0
    state.handoff = a_handoff(threshold=None)
    [fact] = facts.handoff(state, STAMP, 85)
    assert isinstance(fact, HandoffFact)
    assert (fact.status, fact.status_at, fact.threshold, fact.instant) == ("open", None, 85, True)


def test_no_handoff_no_turn_and_no_score_change_report_nothing_and_number_nothing() -> None:
    state = a_lead()
    assert facts.handoff(state, STAMP, 60) == []
    assert facts.assignment(state, STAMP) == []
    assert facts.assignment(handed_off(), STAMP, index=2) == []
    assert facts.score(state, STAMP, "fit", 0, "nothing") == []
    assert state.ledger_seq == 0


def test_a_transition_counts_time_in_the_stage_left_but_not_in_a_rechase() -> None:
    state = handed_off()
    state.transitions, state.stage_entered_at = 3, T0 - timedelta(minutes=30)
    [moved] = facts.transition(state, STAMP, "nurturing", "assigned", "routing", "handoff")
    [chased] = facts.transition(state, STAMP, "assigned", "assigned", "sla", "missed")
    assert isinstance(moved, TransitionFact) and isinstance(chased, TransitionFact)
    assert (moved.seconds_in_from_stage, moved.handoff) == (1800.0, 1)
    assert chased.seconds_in_from_stage is None
    [back] = facts.transition(state, STAMP, "assigned", "recycled", "alice", "rejected")
    assert isinstance(back, TransitionFact) and back.handoff is None


def test_a_backfill_reports_every_turn_then_the_outcome_and_its_handoff() -> None:
    state = handed_off(stage="won")
    state.assignments.append(Assignment(rep="bob", at=T0, reason="reassigned", handoff=1))
    state.outcome = Outcome(result="won", amount=5.0, at=T0, rep="bob")
    kinds = [f.kind for f in facts.backfill(state, STAMP, 60)]
    assert kinds == ["assignment", "assignment", "outcome", "handoff"]
    state.outcome = None
    state.stage = "working"
    assert [f.kind for f in facts.backfill(state, STAMP, 60)] == [
        "assignment",
        "assignment",
        "handoff",
    ]


def test_a_turn_reports_its_response_time_and_escalations() -> None:
    state = handed_off()
    turn = state.assignments[0]
    turn.responded_at, turn.response = T0 + timedelta(minutes=5), "accepted"
    turn.escalated_to = ["maria", "sam"]
    [fact] = facts.assignment(state, STAMP)
    assert isinstance(fact, AssignmentFact)
    assert (fact.seconds_to_response, fact.escalations, fact.escalated_to) == (
        300.0,
        2,
        "maria, sam",
    )


def test_held_and_task_rows_say_what_happened() -> None:
    state = a_lead()
    state.cadence = PROGRESS
    held = HeldTouch(
        key="touch:k",
        cadence="general",
        step="welcome",
        cycle=1,
        label="l",
        reason="bad template",
        since=T0,
        rules_version="v1",
    )
    [dropped] = facts.held_touch_dropped(state, STAMP, held, "handed off to sales")
    assert isinstance(dropped, TouchFact)
    assert (dropped.key, dropped.status) == ("touch:k", "skipped")
    assert dropped.detail == "held (bad template); dropped: handed off to sales"
    task = TaskRef(key="touch:t", channel="call", cadence="general", step="call", due_at=T0)
    [done] = facts.task_done(state, STAMP, task, "connected", "alice")
    assert isinstance(done, TouchFact)
    assert (done.key, done.status, done.cycle, done.detail) == (
        "touch:t:done",
        "task_done",
        3,
        "connected by alice",
    )


def test_an_outcome_row_and_a_batch_carry_the_deal_and_the_lead() -> None:
    state = handed_off(stage="won")
    closed = Outcome(result="won", amount=1200.0, at=T0, rep="alice")
    state.outcome = closed
    won, _ = facts.outcome(state, STAMP, closed, 60)
    assert isinstance(won, OutcomeFact)
    assert (won.result, won.amount, won.handoff) == ("won", 1200.0, 1)
    later = T0 + timedelta(seconds=1)
    written = facts.batch(state, facts.snapshot(state, "wf-1"), [won], later)
    assert state.ledger_flushes == 1
    assert (written.lead.updated_at, written.lead.outcome, written.lead.amount) == (
        later,
        "won",
        1200.0,
    )
    assert written.lead.version == int(later.timestamp() * 1_000_000) * 1000 + state.ledger_seq


# --- properties over a lead's life ------------------------------------------------------------


def _entry(points: int) -> ScoreEntry:
    return ScoreEntry(at=T0, rule="page", points=points)


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(min_value=0, max_value=5)),
        st.tuples(st.just("event"), st.booleans(), st.integers(min_value=-5, max_value=20)),
        st.tuples(st.just("score"), st.integers(min_value=-20, max_value=20)),
        st.tuples(st.just("move"), st.sampled_from(STAGES)),
        st.tuples(st.just("handoff")),
        st.tuples(st.just("respond")),
        st.tuples(st.just("touch"), st.sampled_from(["sent", "skipped", "task"])),
        st.tuples(st.just("close"), st.sampled_from(["won", "lost"])),
        st.tuples(st.just("flush")),
    ),
    max_size=60,
)


def _live(operations: list[tuple[Any, ...]], check: Callable[[LeadState], None]) -> list[Fact]:
    """Play ``operations`` on a lead the way the workflow does, building facts as it goes;
    ``check`` sees the state before each build; the facts and the lead's batches' rows, in
    order (a batch is the lead's own row: its version is the ``version`` of a fake fact)."""
    state, now, made = a_lead(), T0, []
    touches = 0

    def build(builder: Callable[..., list[Fact]], *args: Any, **kwargs: Any) -> None:
        before = state.model_dump(exclude=BOOKKEEPING)
        made.extend(builder(state, facts.Stamp(now, "run-2", "run-1"), *args, **kwargs))
        assert state.model_dump(exclude=BOOKKEEPING) == before, "a fact changed the lead"
        check(state)

    for op in operations:
        match op:
            case ("tick", seconds):
                now += timedelta(seconds=seconds)
            case ("event", with_id, points):
                state.events_applied += 1
                state.score = state.score.with_entries([_entry(points)])
                event_id = f"ev{state.events_applied}" if with_id else None
                event = LeadEvent(lead_id=LEAD, type="page_view", event_id=event_id)
                build(facts.event, event, [_entry(points)])
            case ("score", delta):
                build(facts.score, "decay", delta, "decay")
            case ("move", to):
                state.transitions += 1
                build(facts.transition, state.stage, to, "system", "test")
                state.stage, state.stage_entered_at = to, now
            case ("handoff",):
                state.handoffs += 1
                state.handoff = a_handoff(state.handoffs)
                state.assignments.append(
                    Assignment(rep="alice", at=now, reason="handoff", handoff=state.handoffs)
                )
                build(facts.assignment)
                build(facts.handoff, 60)
            case ("respond",) if state.assignments:
                state.assignments[-1].responded_at = now
                build(facts.assignment)
            case ("touch", status):
                touches += 1
                step = STEP.model_copy(update={"name": f"step{touches}"})
                build(facts.touch, PROGRESS, "general", step, status, None)
            case ("close", result) if state.handoff and state.outcome is None:
                state.outcome = Outcome(result=result, at=now, rep="alice")
                build(facts.outcome, state.outcome, 60)
            case ("flush",):
                row = facts.batch(state, facts.snapshot(state, "wf"), [], now).lead
                made.append(AssignmentFact(key="lead-row", version=row.version, **_ROW))
    return made


_ROW: dict[str, Any] = {"handoff": 0, "rep": "-", "at": T0, "reason": "the lead's row"}


@settings(max_examples=150, deadline=None)
@given(OPERATIONS)
def test_facts_of_a_life_have_unique_keys_and_ever_later_versions(
    operations: list[tuple[Any, ...]],
) -> None:
    made = _live(operations, check=lambda state: None)
    once = [f.key for f in made if not isinstance(f, HandoffFact | AssignmentFact)]
    assert len(once) == len(set(once)), "a fact key was used twice"
    versions = [f.version for f in made if isinstance(f, HandoffFact | AssignmentFact)]
    assert versions == sorted(versions) and len(versions) == len(set(versions))
    assert all(f.key.startswith((f"{LEAD}:", f"touch:{LEAD}:", "lead-row")) for f in made)


@settings(max_examples=100, deadline=None)
@given(OPERATIONS)
def test_facts_depend_on_nothing_but_what_they_are_given(
    operations: list[tuple[Any, ...]],
) -> None:
    """No clock, no randomness, no hidden state: the same life gives the same facts."""
    first = _live(operations, check=lambda state: None)
    again = _live(operations, check=lambda state: None)
    assert [f.model_dump() for f in first] == [f.model_dump() for f in again]


@given(lead_states())
def test_the_leads_row_says_what_the_lead_is(state: LeadState) -> None:
    row = facts.snapshot(state, "wf-9")
    assert (row.lead_id, row.workflow_id, row.stage, row.owner) == (
        LEAD,
        "wf-9",
        state.stage,
        state.owner,
    )
    assert (row.score, row.grade, row.segment, row.campaign) == (
        state.score.total,
        state.grade,
        state.segment,
        state.profile.campaign,
    )
    assert (row.handoffs, row.touches_sent, row.events) == (
        state.handoffs,
        state.touches_sent,
        state.events_applied,
    )
    assert row.outcome == (state.outcome.result if state.outcome else None)
    assert (row.version, row.updated_at) == (0, facts.SNAPSHOT_EPOCH)


@given(lead_states())
def test_a_score_change_says_the_score_after_it(state: LeadState) -> None:
    [fact] = facts.score(state, STAMP, "reset", -4, "reset")
    assert isinstance(fact, ScoreChangeFact)
    assert (fact.score_after, fact.delta, fact.at) == (state.score.total, -4, T0)
