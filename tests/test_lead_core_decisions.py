"""The lead core's smaller decisions: what templates see, the rep's story, re-segmenting."""

from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import given

from nurture.contract.messages import LeadState
from nurture.core.context import rep_alert_context, step_context, template_context
from nurture.core.enrolment import may_resegment
from nurture.core.handoff import story_for
from nurture.domain.cadence import CadenceProgress
from nurture.domain.rules import Rep
from nurture.domain.scoring import ScoreCard, ScoreEntry
from tests.lead_states import T0, a_lead, handed_off, lead_states

ALICE = Rep(id="alice", name="Alice", email="alice@example.com")


@given(lead_states())
def test_templates_see_the_lead_as_it_is_in_plain_json(state: LeadState) -> None:
    context = template_context(state)
    assert json.loads(json.dumps(context)) == context  # it travels in an activity's input
    assert context["lead"]["display_name"] == state.profile.display_name
    assert context["lead"]["email"] == state.profile.email
    assert (context["score"], context["grade"], context["stage"], context["owner"]) == (
        state.score.total,
        state.grade,
        state.stage,
        state.owner,
    )
    assert (context["story"] is None) == (state.handoff is None)
    due = state.handoff.sla_due_at if state.handoff else None
    assert context["sla_due_at"] == (due.isoformat() if due else None)


def test_a_step_and_a_rep_alert_add_where_and_who_to_the_lead() -> None:
    state = handed_off()
    state.handoff.sla_due_at = T0 + timedelta(hours=4)
    step = step_context(state, "general", 2, "welcome")
    assert step == {**template_context(state), "step": "welcome", "cadence": "general", "cycle": 2}
    alert = rep_alert_context(state, ALICE, {"missed_by": "bob", "owner": "bob"})
    assert alert["rep"]["email"] == "alice@example.com"
    assert (alert["missed_by"], alert["owner"]) == ("bob", "bob")  # what the alert says wins
    assert alert["sla_due_at"] == "2026-12-03T13:00:00+00:00"
    assert list(alert) == [*template_context(state), "rep", "missed_by"]
    assert rep_alert_context(state, ALICE)["owner"] == "alice"


@given(lead_states())
def test_a_story_tells_the_strongest_behaviours_and_the_latest_activity(
    state: LeadState,
) -> None:
    story = story_for(state, "score 70 reached threshold 60 on pricing")
    card = state.score
    assert (story.score, story.grade, story.campaign) == (
        card.total,
        state.grade,
        state.profile.campaign,
    )
    assert story.fit == card.fit_matches
    behaviours = [
        (rule, t.points, t.count) for rule, t in card.tallies.items() if t.points or t.count
    ]
    assert len(story.top_behaviours) == min(8, len(behaviours))
    assert all(row in behaviours for row in story.top_behaviours)
    strongest = sorted((abs(points) for _, points, _ in behaviours), reverse=True)[:8]
    assert [abs(points) for _, points, _ in story.top_behaviours] == strongest
    assert story.recent == card.recent[-10:]


def test_a_story_leaves_fit_to_its_own_field() -> None:
    state = a_lead()
    state.score = ScoreCard(fit_points=15, fit_matches={"senior title": 15}).with_entries(
        [ScoreEntry(at=T0, rule="pricing", points=20)]
    )
    story = story_for(state, "instant: demo_request")
    assert story.top_behaviours == [("pricing", 20, 1)]
    assert story.fit == {"senior title": 15}


def test_a_profile_may_resegment_a_lead_only_before_its_first_touch() -> None:
    state = a_lead()
    state.cadence = CadenceProgress(cadence_id="general", enrolment=1)
    assert may_resegment(state)
    not_fresh: list[dict[str, object]] = [
        {"touches_sent": 1},
        {"stage": "recycled"},
        {"cadence": None},
        {"cadence": state.cadence.model_copy(update={"step_index": 1})},
        {"cadence": state.cadence.model_copy(update={"cycle": 2})},
        {"cadence": state.cadence.model_copy(update={"waiting_task": "touch:call"})},
    ]
    for change in not_fresh:
        assert not may_resegment(state.model_copy(update=change)), change


@given(lead_states())
def test_only_a_lead_that_had_nothing_yet_may_change_segment(state: LeadState) -> None:
    progress = state.cadence
    fresh = (
        state.stage == "nurturing"
        and progress is not None
        and (progress.cycle, progress.step_index, progress.waiting_task) == (1, 0, None)
        and state.touches_sent == 0
    )
    assert may_resegment(state) == fresh
