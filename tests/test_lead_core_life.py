"""A lead's whole life through its core, for any sequence of what can happen to it: behaviour,
profile changes, time passing (touches, decay, SLA misses), reps acting (or trying to act on a
lead that is not theirs), tasks done, suppression. No Temporal: ``tests/lead_driver.py``
drives the core the way the workflow does, so hundreds of lives run in seconds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nurture.contract.ledger import TouchFact
from nurture.contract.messages import OutcomeRequest, RejectRequest, RepAction, TaskCompletion
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.rules import SYSTEM_EVENT_TYPES
from nurture.domain.stages import MARKETING_STAGES
from nurture.domain.tasks import OUTCOMES
from tests.lead_driver import SHIPPED_RULES, WITH_CRM, Lead, World
from tests.lead_states import LEAD, T0

SCORING = SHIPPED_RULES.scoring
EVENT_TYPES = sorted({*SCORING.behaviours, *SCORING.instant_qualify, *SYSTEM_EVENT_TYPES})
REPS = [rep.id for rep in SHIPPED_RULES.routing.reps]
BLOCKED = "blocked@example.com"  # on the suppression list: sending to it answers "suppressed"

Message = tuple[Any, ...]

events = st.tuples(
    st.just("event"),
    st.sampled_from(EVENT_TYPES),
    st.one_of(st.none(), st.sampled_from(["e1", "e2", "e3"])),  # ids repeat: duplicates
)
instant = st.tuples(st.just("event"), st.sampled_from(SCORING.instant_qualify), st.none())
profiles = st.tuples(
    st.just("profile"),
    st.sampled_from([None, "ann@example.com", BLOCKED]),
    st.sampled_from([None, "VP Sales", "Marketing Manager", "Intern"]),
    st.sampled_from([None, "+44 20 7946 0000"]),
    st.sampled_from([None, 40, 2000]),  # the enterprise cadence has a call step
    st.sampled_from([None, "EMEA", "AMER"]),  # pools of two and three reps
)
waits = st.tuples(
    st.just("wait"), st.sampled_from([0.5, 1, 4, 9, 24, 24 * 3, 24 * 8, 24 * 20, 24 * 60])
)
actions = st.tuples(
    st.just("act"),
    st.sampled_from(["accept", "contact", "reject", "won", "lost"]),
    st.sampled_from(["owner", "someone else", "a stranger"]),
)
tasks = st.tuples(st.just("task"), st.integers(0, 10))
messages = st.lists(
    st.one_of(events, instant, profiles, waits, waits, actions, actions, tasks), max_size=40
)


def apply(lead: Lead, message: Message) -> None:
    kind = message[0]
    if kind == "event":
        _, event_type, event_id = message
        lead.signal(LeadEvent(lead_id=LEAD, type=event_type, at=lead.clock, event_id=event_id))
    elif kind == "profile":
        _, email, title, phone, size, region = message
        lead.signal(
            LeadProfile(
                lead_id=LEAD,
                email=email,
                title=title,
                phone=phone,
                company_size=size,
                region=region,
            )
        )
    elif kind == "wait":
        lead.wait(timedelta(hours=message[1]))
    elif kind == "act":
        act(lead, message[1], message[2])
    else:
        complete_a_task(lead, message[1])


def act(lead: Lead, verb: str, who: str) -> None:
    core, owner = lead.core, lead.state.owner
    if who == "owner":
        rep = owner or REPS[0]
    elif who == "someone else":
        rep = next(r for r in REPS if r != owner)
    else:
        rep = "stranger"
    if verb in ("accept", "contact"):
        action = RepAction(rep=rep)
        error = core.rep_action_error(verb, rep)  # type: ignore[arg-type]
        done = lead.act(
            error,
            lambda: core.contacted(action, "accepted" if verb == "accept" else "contacted"),
            action,
        )
    elif verb == "reject":
        rejection = RejectRequest(rep=rep, reason="not a fit")
        error = core.rep_action_error("reject", rep)
        done = lead.act(error, lambda: core.reject(rejection), rejection)
    else:
        closing = OutcomeRequest(rep=rep, result=verb, amount=1000.0)  # type: ignore[arg-type]
        error = core.rep_action_error("outcome", rep)
        done = lead.act(error, lambda: core.close(closing), closing)
    assert done == (error is None)
    if who == "a stranger":
        assert not done and error is not None and "stranger" in error
    if who == "someone else" and owner is not None:
        assert not done, "a rep acted on another rep's lead"


def complete_a_task(lead: Lead, pick: int) -> None:
    open_tasks = [task for task in lead.state.tasks if task.status == "open"]
    if not open_tasks:
        return
    task = open_tasks[pick % len(open_tasks)]
    outcomes = OUTCOMES[task.channel]
    done = TaskCompletion(rep=REPS[0], task_key=task.key, outcome=outcomes[pick % len(outcomes)])
    lead.act(lead.core.task_completion_error(done), lambda: lead.core.complete_task(done), done)


def check(lead: Lead) -> None:
    """What must hold of a lead at every moment of its life."""
    state, score = lead.state, lead.state.score
    # The score is the sum of its parts: nothing is counted that is not explained.
    assert score.behaviour_points == sum(tally.points for tally in score.tallies.values())
    assert score.fit_points == sum(score.fit_matches.values())
    # A lead with sales always has an owner, a rep routing knows.
    if state.stage in ("assigned", "working"):
        assert state.owner in REPS
    if state.stage in MARKETING_STAGES:
        assert state.owner is None
    # A turn after an SLA miss never goes back to the rep who missed, nor to anyone who
    # already missed on that handoff.
    if state.handoff is not None:
        escalations = state.handoff.escalations
        for number, escalation in enumerate(escalations):
            missed_so_far = {e.missed_by for e in escalations[: number + 1]}
            assert escalation.reassigned_to not in missed_so_far
    # Every touch is sent, or held or skipped with its reason; the read model agrees.
    touches = [fact for fact in lead.ledger.items if isinstance(fact, TouchFact)]
    for touch in touches:
        if touch.status not in ("sent", "task"):
            assert touch.detail, f"touch {touch.key} {touch.status} without a reason"
    assert len([t for t in touches if t.status == "sent"]) == state.touches_sent
    assert len([e for e in lead.world.sent if e.category == "touch"]) == state.touches_sent
    if state.held_touch is not None:
        assert state.held_touch.reason
    # Every send has a key of its own: an email or CRM write is never deduplicated away by
    # another's key, and the same one asked twice is sent once.
    sent = [email.key for email in lead.world.sent]
    assert len(sent) == len(set(sent))
    pushes = [write.key for write in lead.crm.items]
    assert len(pushes) == len(set(pushes))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), profiles), messages, st.booleans(), st.booleans(), st.booleans())
def test_every_life_keeps_the_leads_promises(
    first: Message | None,
    life: list[Message],
    broken_welcome: bool,
    reps_away: bool,
    crm: bool,
) -> None:
    world = World(
        rules=WITH_CRM if crm else SHIPPED_RULES, suppressed={BLOCKED}, reps_away=reps_away
    )
    if broken_welcome:  # a marketer's typo in every welcome email
        welcomes = (cadence.steps[0].template for cadence in SHIPPED_RULES.cadences.cadences)
        world.broken_templates.update(t for t in welcomes if t)
    lead = Lead(LEAD, T0, world)
    check(lead)
    for message in [first] if first else []:
        apply(lead, message)
        check(lead)
    for message in life:
        apply(lead, message)
        check(lead)
    # What the lives reached (``--hypothesis-show-statistics``): every part of a life is met.
    state = lead.state
    event(f"ends {state.stage}")
    event(f"{min(state.handoffs, 2)}+ handoffs")
    if state.handoff and state.handoff.missed_by:
        event("an SLA miss")
    if any(turn.reason.startswith("reassigned") for turn in state.assignments):
        event("reassigned")
    if state.held_touch or any(
        isinstance(f, TouchFact) and f.status == "held" for f in lead.ledger.items
    ):
        event("a touch held")
    if state.tasks:
        event("a task")
    if lead.crm.items:
        event("pushed to the CRM")


def test_an_unsubscribed_lead_is_never_sent_another_touch() -> None:
    lead = Lead(LEAD, T0)
    lead.signal(LeadProfile(lead_id=LEAD, email="ann@example.com"))
    lead.wait(timedelta(days=3))
    sent_before = lead.state.touches_sent
    assert sent_before >= 1  # the cadence began
    lead.signal(LeadEvent(lead_id=LEAD, type="unsubscribe", at=lead.clock))
    lead.wait(timedelta(days=120))
    assert lead.state.touches_sent == sent_before
    assert lead.state.stage == "suppressed"
    assert lead.state.touches_skipped == 0 or lead.state.email_suppressed


def test_a_lead_handed_off_and_ignored_climbs_the_ladder_and_stays_owned() -> None:
    lead = Lead(LEAD, T0)
    lead.signal(LeadProfile(lead_id=LEAD, email="ann@example.com", region="AMER"))
    lead.signal(LeadEvent(lead_id=LEAD, type="contact_sales", at=lead.clock))
    assert lead.state.stage == "assigned"
    first = lead.state.owner
    lead.wait(timedelta(days=10))
    handoff = lead.state.handoff
    assert handoff is not None and handoff.missed_by[0] == first
    assert lead.state.stage == "assigned" and lead.state.owner in REPS
    owners = [turn.rep for turn in lead.state.assignments]
    assert len(owners) >= 3  # the AMER pool of three, then the fallback owner
    assert len(owners) == len(set(owners))  # nobody gets it back after missing
    alerts = [e.category for e in lead.world.sent]
    assert "handoff" in alerts and "escalation" in alerts


def test_a_call_step_waits_on_its_task_and_its_outcome_is_scored() -> None:
    lead = Lead(LEAD, T0)
    lead.signal(
        LeadProfile(lead_id=LEAD, email="ann@example.com", company_size=2000, phone="+1 555 0100")
    )
    assert lead.state.segment == "enterprise"
    for _ in range(60):  # day by day until the cadence reaches its call step
        lead.wait(timedelta(days=1))
        if lead.state.tasks:
            break
    task = lead.state.tasks[-1]
    assert task.channel == "call" and task.status == "open"
    assert lead.state.cadence is not None and lead.state.cadence.waiting_task == task.key
    booked = TaskCompletion(rep=REPS[0], task_key=task.key, outcome="meeting_booked")
    assert lead.act(None, lambda: lead.core.complete_task(booked), booked)
    assert task.status == "done"
    assert lead.state.stage == "assigned"  # a booked meeting qualifies instantly
    again = lead.core.task_completion_error(booked)
    assert again is not None and "already done" in again
