"""Leads for tests of the pure lead core (``nurture/lead_core``): examples and a hypothesis
strategy for any state a lead can be in, as far as the core reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from nurture.contract.messages import Assignment, Handoff, LeadState, Outcome, Story
from nurture.domain.cadence import CadenceProgress
from nurture.domain.leads import LeadProfile
from nurture.domain.routing import RouteDecision
from nurture.domain.scoring import RuleTally, ScoreCard, ScoreEntry
from nurture.domain.stages import STAGES

LEAD = "lead-1"
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
REPS = ("alice", "bob")


def a_lead() -> LeadState:
    return LeadState(lead_id=LEAD, profile=LeadProfile(lead_id=LEAD, campaign="spring"))


def a_handoff(number: int = 1, threshold: int | None = 60) -> Handoff:
    return Handoff(
        number=number,
        at=T0,
        route=RouteDecision(rule="default", pool=list(REPS), strategy="round_robin"),
        story=Story(
            campaign="spring",
            qualified_by="instant: demo_request",
            score=70,
            grade="A",
            fit={},
            top_behaviours=[],
            recent=[],
        ),
        threshold=threshold,
    )


def handed_off(stage: str = "assigned") -> LeadState:
    state = a_lead()
    state.handoffs = 1
    state.handoff = a_handoff()
    state.assignments.append(Assignment(rep="alice", at=T0, reason="handoff", handoff=1))
    state.owner = "alice"
    state.stage = stage  # type: ignore[assignment]
    return state


RULES = tuple(f"rule{number}" for number in range(12))  # more than a story tells (8)
ENTRIES = st.builds(
    ScoreEntry,
    at=st.just(T0),
    rule=st.sampled_from(RULES),
    points=st.integers(-20, 40),
)


@st.composite
def score_cards(draw: st.DrawFn) -> ScoreCard:
    fit = draw(
        st.dictionaries(st.sampled_from(["senior title", "big company"]), st.integers(1, 30))
    )
    card = ScoreCard(fit_points=sum(fit.values()), fit_matches=fit)
    card = card.with_entries(draw(st.lists(ENTRIES, max_size=50)))
    if draw(st.booleans()):  # a rule that came to nothing: nothing to tell
        card.tallies["expired"] = RuleTally(points=0, count=0)
    return card


@st.composite
def lead_states(draw: st.DrawFn) -> LeadState:
    """A lead in any stage, with or without a handoff, cadence, outcome or SLA clock (not
    always a consistent one: the core must not rely on more than it is given)."""
    state = handed_off() if draw(st.booleans()) else a_lead()
    state.profile = state.profile.model_copy(
        update={
            "email": draw(st.none() | st.just("ann@example.com")),
            "first_name": draw(st.none() | st.just("Ann")),
            "company": draw(st.none() | st.sampled_from(["Acme", "Initech"])),
            "campaign": draw(st.none() | st.sampled_from(["spring", "fall"])),
        }
    )
    state.stage = draw(st.sampled_from(STAGES))
    state.owner = draw(st.none() | st.sampled_from(REPS))
    state.score = draw(score_cards())
    state.grade = draw(st.sampled_from("ABCD"))
    state.segment = draw(st.none() | st.sampled_from(["general", "enterprise"]))
    state.touches_sent = draw(st.integers(0, 3))
    state.events_applied = draw(st.integers(0, 100))
    if draw(st.booleans()):
        state.cadence = CadenceProgress(
            cadence_id=draw(st.sampled_from(["general", "enterprise", "recycle"])),
            enrolment=draw(st.integers(1, 3)),
            cycle=draw(st.integers(1, 2)),
            step_index=draw(st.integers(0, 2)),
            waiting_task=draw(st.none() | st.just("touch:task")),
        )
    if state.handoff is not None:
        minutes = draw(st.none() | st.integers(1, 600))
        state.handoff.sla_due_at = None if minutes is None else T0 + timedelta(minutes=minutes)
        if draw(st.booleans()):
            state.outcome = Outcome(result=draw(st.sampled_from(["won", "lost"])), at=T0, rep="bob")
    return state
