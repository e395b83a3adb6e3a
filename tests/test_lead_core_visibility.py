"""What operators see of a lead (its search attributes), as plain functions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nurture.contract.messages import LeadState
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.core import visibility
from tests.lead_states import handed_off, lead_states


def test_every_registered_search_attribute_has_a_value_in_registration_order() -> None:
    values = visibility.search_attributes(handed_off())
    assert list(values) == [key.name for key in SEARCH_ATTRIBUTES]


@given(lead_states())
def test_the_search_attributes_are_the_state(state: LeadState) -> None:
    values = visibility.search_attributes(state)
    assert values["LeadStage"] == state.stage
    assert values["LeadScore"] == state.score.total
    assert values["LeadGrade"] == state.grade
    assert values["LeadOwner"] == state.owner
    assert values["LeadSegment"] == state.segment
    assert values["LeadCampaign"] == state.profile.campaign
    running = state.stage == "assigned" and state.handoff is not None
    assert values["SlaDueAt"] == (state.handoff.sla_due_at if running else None)


@given(st.lists(lead_states(), min_size=1, max_size=8))
def test_publishing_what_changed_keeps_visibility_equal_to_the_state(
    states: list[LeadState],
) -> None:
    """The workflow upserts only what ``changed`` returns; after each publish what operators
    see is the lead as it is, and publishing again changes nothing."""
    published: dict[str, visibility.SearchValue] = {}
    for state in states:
        values = visibility.search_attributes(state)
        changes = visibility.changed(values, published)
        assert all(published.get(name, object()) != value for name, value in changes.items())
        published.update(changes)
        assert published == values
        assert visibility.changed(values, published) == {}


def test_the_first_publish_of_a_run_states_every_attribute_even_the_empty_ones() -> None:
    values = visibility.search_attributes(handed_off(stage="working"))
    assert values["SlaDueAt"] is None
    assert visibility.changed(values, {}) == values
