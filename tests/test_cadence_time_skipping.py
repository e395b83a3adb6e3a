"""Nurture cadences on durable timers, under the time-skipping test server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from nurture.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, running_engine
from workflows.lead import LeadWorkflow


async def test_twelve_touch_cadence_runs_to_completion_through_the_real_client(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(
            lead_id=lead,
            email="ada@corp.example",
            first_name="Ada",
            company="Corp",
            company_size=900,
        )
        await time_skipping_env.sleep(timedelta(weeks=12))
        state = await handle.query(LeadWorkflow.state)

    sent = standin.messages_with(lead_id=lead)
    assert [m.subject for m in sent] == ["Touch 1 for Ada"] + [f"Touch {n}" for n in range(2, 13)]
    assert all(m.to == ["ada@corp.example"] for m in sent)
    assert "Hi Ada at Corp" in sent[0].contents["text/html"]
    assert "step s12 of enterprise" in sent[-1].contents["text/plain"]
    assert len({m.custom_args["nurture_key"] for m in sent}) == 12
    assert state.touches_sent == 12 and state.cadence is not None and state.cadence.parked
    assert state.stage == "nurturing" and state.segment == "enterprise"


async def test_provider_outage_is_retried_and_a_refusal_surfaces_on_the_lead(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    standin.fail_next(503, count=2)  # the first touch meets an outage, then goes through
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="pat@corp.example", first_name="Pat")
        await time_skipping_env.sleep(timedelta(days=2))
        assert [m.subject for m in standin.messages_with(lead_id=lead)] == ["Hello Pat"]
        standin.fail_next(400)  # the second is refused outright: not retried, surfaced
        await time_skipping_env.sleep(timedelta(weeks=3))
        state = await handle.query(LeadWorkflow.state)

    sent = standin.messages_with(lead_id=lead)
    keys = [m.custom_args["nurture_key"].rsplit(":", 2)[-2:] for m in sent]
    assert keys == [["c1", "hello"], ["c2", "hello"], ["c2", "follow-up"]]
    assert state.last_error is not None
    assert "SendGrid refused the message (400)" in state.last_error
    assert any(t.kind == "error" and "touch email failed" in t.detail for t in state.timeline)
    assert state.touches_sent == 3 and state.cadence is not None and state.cadence.parked
