"""A state query the lead refused (it came with history events ahead of their workflow task,
``workflows/clock.py``) is asked again; any other failed query is not."""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError

from nurture.client.sales import QUERY_ATTEMPTS, query_state
from nurture.contract.messages import LeadState
from nurture.contract.names import AHEAD_OF_WORKFLOW_TASK, STATE_QUERY
from nurture.domain.leads import LeadProfile

REFUSED = f"workflow lead-x is {AHEAD_OF_WORKFLOW_TASK}: its timer for ... fired"


class Answers:
    """A workflow handle whose state query fails with ``failures`` in turn, then answers."""

    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.asked = 0

    async def query(
        self, name: str, *, result_type: type[LeadState], rpc_timeout: object = None
    ) -> LeadState:
        assert (name, result_type) == (STATE_QUERY, LeadState)
        self.asked += 1
        if self.failures:
            raise WorkflowQueryFailedError(self.failures.pop(0))
        return LeadState(lead_id="x", profile=LeadProfile(lead_id="x"))


def _handle(answers: Answers) -> WorkflowHandle[Any, Any]:
    return cast(WorkflowHandle[Any, Any], answers)


async def test_a_query_the_lead_refused_ahead_of_its_workflow_task_is_asked_again() -> None:
    answers = Answers(REFUSED, REFUSED)
    assert (await query_state(_handle(answers))).lead_id == "x"
    assert answers.asked == 3


async def test_a_lead_that_keeps_refusing_fails_the_query_in_the_end() -> None:
    answers = Answers(*[REFUSED] * QUERY_ATTEMPTS)
    with pytest.raises(WorkflowQueryFailedError, match=AHEAD_OF_WORKFLOW_TASK):
        await query_state(_handle(answers))
    assert answers.asked == QUERY_ATTEMPTS


async def test_any_other_failed_query_is_not_asked_again() -> None:
    answers = Answers("Query handler for 'state' expected but not found")
    with pytest.raises(WorkflowQueryFailedError, match="not found"):
        await query_state(_handle(answers))
    assert answers.asked == 1
