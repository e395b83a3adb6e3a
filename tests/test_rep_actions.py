"""Rep actions are Temporal updates with validators: tested on the dev server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from nurture.client.sales import LeadActionError, UnknownLeadError, act, read_state
from nurture.contract.messages import OutcomeRequest, RejectRequest, RepAction
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, lead_state, running_engine, wait_for_state

FAST_SLA = 14400.0  # 4h contact SLA becomes 1s


async def _assigned_lead(
    engine, region: str = "EMEA", email: str | None = None
) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    lead = lead_id()
    await engine.profile(lead_id=lead, email=email or f"{lead}@corp.example", region=region)
    for kind in ("form_fill", "form_fill", "download"):
        handle = await engine.event(lead, kind)
    await wait_for_state(handle, lambda s: s.stage == "assigned")
    return lead, handle


async def test_contact_in_time_stops_the_sla_clock(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    async with running_engine(dev_env.client, standin, tmp_path, time_scale=FAST_SLA) as engine:
        lead, handle = await _assigned_lead(engine)
        owner = (await lead_state(handle)).owner  # type: ignore[arg-type]
        result = await act(dev_env.client, lead, "contact", RepAction(rep=owner or ""))
        assert result.stage == "working"
        await asyncio.sleep(2.5)  # more than twice the (scaled) SLA
        state = await read_state(dev_env.client, lead)
    assert state.stage == "working" and state.owner == owner
    assert state.handoff is not None and state.handoff.escalations == []
    assert state.handoff.contacted_at is not None and state.handoff.sla_due_at is None
    assert standin.messages_with(lead_id=lead, category="escalation") == []


async def test_reject_by_owner_recycles_the_lead_with_its_reason(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        lead, handle = await _assigned_lead(engine)
        owner = (await lead_state(handle)).owner  # type: ignore[arg-type]
        assert owner == "alice"
        await act(dev_env.client, lead, "accept", RepAction(rep="alice"))
        result = await act(
            dev_env.client, lead, "reject", RejectRequest(rep="alice", reason="no budget until Q3")
        )
        state = await read_state(dev_env.client, lead)
    assert result.stage == "recycled" and result.owner is None
    assert state.stage == "recycled" and state.owner is None
    assert [(r.rep, r.reason) for r in state.rejections] == [("alice", "no budget until Q3")]
    assert state.cadence is not None and state.cadence.cadence_id == "recycle"
    assert state.score.behaviour_points == 0  # must earn sales-readiness again
    assert state.score.tallies["recycle reset"].points == -50


async def test_reject_by_another_rep_is_refused_and_changes_nothing(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        lead, handle = await _assigned_lead(engine)
        before = await lead_state(handle)  # type: ignore[arg-type]
        with pytest.raises(LeadActionError, match="rep 'bob' does not own this lead"):
            await act(dev_env.client, lead, "reject", RejectRequest(rep="bob", reason="not mine"))
        with pytest.raises(LeadActionError, match="unknown rep 'mallory'"):
            await act(dev_env.client, lead, "accept", RepAction(rep="mallory"))
        after = await lead_state(handle)  # type: ignore[arg-type]
    assert after.stage == before.stage == "assigned"
    assert after.owner == before.owner == "alice"
    assert after.rejections == [] and after.timeline == before.timeline


async def test_won_and_lost_close_the_loop_and_need_an_accepted_lead(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        won, _ = await _assigned_lead(engine, region="AMER")
        with pytest.raises(LeadActionError, match="accept or contact it first"):
            await act(
                dev_env.client, won, "outcome", OutcomeRequest(rep="chen", result="won", amount=1)
            )
        await act(dev_env.client, won, "accept", RepAction(rep="chen"))
        result = await act(
            dev_env.client, won, "outcome", OutcomeRequest(rep="chen", result="won", amount=42000)
        )
        lost, _ = await _assigned_lead(engine, region="AMER")
        await act(dev_env.client, lost, "accept", RepAction(rep="dana"))
        await act(dev_env.client, lost, "outcome", OutcomeRequest(rep="dana", result="lost"))
        with pytest.raises(LeadActionError, match="cannot reject a lead in stage 'lost'"):
            await act(dev_env.client, lost, "reject", RejectRequest(rep="dana", reason="late"))
        won_state = await read_state(dev_env.client, won)
        lost_state = await read_state(dev_env.client, lost)
    assert result.stage == "won"
    assert won_state.outcome is not None and won_state.outcome.amount == 42000
    assert lost_state.stage == "lost" and lost_state.outcome is not None


async def test_an_action_on_an_unknown_lead_says_so(dev_env: WorkflowEnvironment) -> None:
    with pytest.raises(UnknownLeadError, match="no lead 'nobody-here'"):
        await act(dev_env.client, "nobody-here", "accept", RepAction(rep="alice"))
