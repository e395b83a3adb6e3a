"""A history told late scores as it did live (issue 16): a website visitor's anonymous visits
reach their lead only when the person is identified, with their original times. Return visits
and decay must see the true history, so the lead's score is what it would have been had it been
known from the first visit."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.domain.leads import LeadEvent
from tests.lead_driver import Lead
from tests.lead_states import LEAD, T0

# Behaviours a visitor shows before saying who they are, small enough that six of them never
# reach the hand-off threshold (a lead in sales keeps scoring, but hands off at another time).
KINDS = ["page_view", "download", "email_open", "careers_page"]
GAPS_HOURS = [0.1, 1, 25, 24 * 3, 24 * 15, 24 * 23, 24 * 40]  # visits, days, decay periods

history = st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(GAPS_HOURS)), max_size=6)


@settings(max_examples=150, deadline=None)
@given(history, st.sampled_from([0.5, 24, 24 * 30]))
def test_a_history_told_late_scores_as_it_did_live(
    visits: list[tuple[str, float]], then_hours: float
) -> None:
    live = Lead(LEAD, T0)
    told: list[LeadEvent] = []
    for number, (kind, gap) in enumerate(visits):
        live.wait(timedelta(hours=gap))
        event = LeadEvent(lead_id=LEAD, type=kind, at=live.clock, event_id=f"v{number}")
        live.signal(event)
        told.append(event)
    live.wait(timedelta(hours=then_hours))  # the person fills in a form: the lead is made now

    late = Lead(LEAD, live.clock)
    for event in told:
        late.signal(event)

    was, now = live.state.score, late.state.score
    assert (now.behaviour_points, now.total) == (was.behaviour_points, was.total)
    assert (now.last_visit_at, now.last_activity_at) == (was.last_visit_at, was.last_activity_at)
    returns = {rule: t.count for rule, t in now.tallies.items() if rule != "decay"}
    assert returns == {rule: t.count for rule, t in was.tallies.items() if rule != "decay"}
