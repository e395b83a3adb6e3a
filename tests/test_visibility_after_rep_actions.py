"""Issue 13, finding 1: rep actions leave Temporal visibility right at once (dev server)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nurture.client.sales import act
from nurture.contract.messages import OutcomeRequest, RejectRequest, RepAction
from nurture.contract.names import OWNER, SCORE, SLA_DUE, STAGE
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import Engine, lead_id, running_engine, wait_for_state
from workflows.lead import LeadWorkflow


async def _assigned(engine: Engine) -> tuple[str, str]:
    """A lead just handed to a rep (round robin over alice and bob): (lead, owner)."""
    lead = lead_id("vis")
    await engine.profile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA")
    state = await engine.request_call(lead)
    assert state.owner is not None
    return lead, state.owner


async def _visible(client: Client, lead: str) -> dict[str, Any]:
    async for wf in client.list_workflows(f'WorkflowId = "lead-{lead}"'):
        attrs = wf.typed_search_attributes
        return {
            "stage": attrs.get(STAGE),
            "owner": attrs.get(OWNER),
            "sla_due": attrs.get(SLA_DUE),
            "score": attrs.get(SCORE),
        }
    return {}


async def _shows(client: Client, query: str, lead: str, timeout: float = 5.0) -> bool:
    """Whether ``query`` finds the lead within ``timeout`` (visibility lags ~0.3 s)."""
    query = f'WorkflowId = "lead-{lead}" AND {query}'
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if (await client.count_workflows(query)).count == 1:
            return True
        await asyncio.sleep(0.2)
    return False


async def test_accept_contact_outcome_and_reject_show_in_visibility_at_once(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 1: after accept, outcome or reject (updates that queue no work for the lead's
    loop) a ``LeadStage``/``LeadOwner`` query finds the new values within seconds, and
    ``SlaDueAt`` is cleared; before, they kept their old values until the next timer/event
    (the 4h SLA here never fires during the test)."""
    client = dev_env.client
    async with running_engine(client, standin, tmp_path) as engine:
        (won, rep), (rejected, other) = await _assigned(engine), await _assigned(engine)
        for lead, owner in ((won, rep), (rejected, other)):
            query = f'LeadStage = "assigned" AND LeadOwner = "{owner}"'
            assert await _shows(client, query, lead)
            assert isinstance((await _visible(client, lead))["sla_due"], datetime)

        await act(client, won, "accept", RepAction(rep=rep))
        assert await _shows(client, f'LeadStage = "working" AND LeadOwner = "{rep}"', won)
        assert (await _visible(client, won))["sla_due"] is None
        await act(client, won, "contact", RepAction(rep=rep))
        await act(client, won, "outcome", OutcomeRequest(rep=rep, result="won", amount=9e3))
        assert await _shows(client, 'LeadStage = "won"', won)

        await act(client, rejected, "reject", RejectRequest(rep=other, reason="no budget"))
        assert await _shows(client, 'LeadStage = "recycled"', rejected)
        shown = await _visible(client, rejected)
        state = await wait_for_state(
            client.get_workflow_handle(f"lead-{rejected}"), lambda s: s.stage == "recycled"
        )
    assert shown["owner"] is None and shown["sla_due"] is None
    assert shown["score"] == state.score.total  # the behaviour reset is visible too


async def test_a_new_leads_segment_shows_in_visibility_at_once(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Found trying it from outside (issue 14): a new lead was enrolled after the loop had
    published, so ``LeadSegment`` stayed empty until its first touch's timer (10 minutes);
    ``LeadSegment = "…"`` found nothing while ``nurture show`` named the segment."""
    client = dev_env.client
    async with running_engine(client, standin, tmp_path) as engine:
        lead = lead_id("segment")
        await engine.profile(lead_id=lead, email=f"{lead}@corp.example", company_size=20)
        state = await wait_for_state(
            client.get_workflow_handle(f"lead-{lead}"), lambda s: s.segment is not None
        )
        assert await _shows(client, f'LeadSegment = "{state.segment}"', lead)


def test_every_update_handler_goes_through_rep_action() -> None:
    """Finding 1, made hard to ship again: an update handler added later without the
    ``rep_action`` wrapper (publish on return, a failure recorded and refused) fails here."""
    updates = workflow._Definition.must_from_class(LeadWorkflow).updates
    assert updates, "no update handlers found"
    unwrapped = [
        name
        for name, definition in updates.items()
        if definition.fn.__code__.co_qualname != "rep_action.<locals>.applied"
    ]
    assert unwrapped == []
