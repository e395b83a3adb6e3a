"""Clients reach a lead by the names in ``nurture.contract.names``; the workflow must answer to
exactly those (a renamed method would strand every caller and every running lead)."""

from __future__ import annotations

from temporalio import workflow

from nurture.contract.names import (
    EVENT_SIGNAL,
    FORGET_SIGNAL,
    LEAD_WORKFLOW,
    PREFERENCES_UPDATE,
    PROFILE_SIGNAL,
    REP_UPDATES,
    STATE_QUERY,
)
from workflows.lead import LeadWorkflow


def test_the_workflow_answers_to_the_contract_names() -> None:
    definition = workflow._Definition.must_from_class(LeadWorkflow)
    assert definition.name == LEAD_WORKFLOW == "LeadWorkflow"
    signals = {PROFILE_SIGNAL, EVENT_SIGNAL, FORGET_SIGNAL}
    assert set(definition.signals) == signals == {"profile", "event", "forget"}
    assert set(definition.queries) == {STATE_QUERY} == {"state"}
    assert set(definition.updates) == {*REP_UPDATES, PREFERENCES_UPDATE}
    assert PREFERENCES_UPDATE == "preferences"  # the person's own choice of topics
    assert set(REP_UPDATES) == {"accept", "contact", "reject", "outcome", "complete_task"}
