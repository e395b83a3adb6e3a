"""Nurture cadences on durable timers, under the time-skipping test server."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from nurture.standins.sendgrid_standin import SendGridStandIn
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


async def test_an_unsubscribed_lead_gets_no_more_email_but_keeps_its_score_and_reaches_sales(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    env = time_skipping_env
    lead = lead_id()
    async with running_engine(env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="u@corp.example", region="EMEA")
        await env.sleep(timedelta(hours=2))
        await engine.event(lead, "download")
        await engine.event(lead, "unsubscribe")
        await env.sleep(timedelta(days=5))  # the follow-up touch (day 3) comes due
        suppressed = await handle.query(LeadWorkflow.state)
        await engine.event(lead, "requested_call")
        await env.sleep(timedelta(minutes=1))
        in_sales = await handle.query(LeadWorkflow.state)

    touches = standin.messages_with(lead_id=lead, category="touch")
    assert len(touches) == 1  # only the touch sent before the unsubscribe
    assert suppressed.stage == "suppressed" and suppressed.email_suppressed == "unsubscribe"
    assert suppressed.score.behaviour_points == 10 and suppressed.touches_skipped >= 1
    assert in_sales.stage == "assigned" and in_sales.owner == "alice"


async def test_inactivity_decays_the_score_of_a_sleeping_lead(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    env = time_skipping_env
    lead = lead_id()
    async with running_engine(env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="d@corp.example")
        await engine.event(lead, "form_fill")
        await engine.event(lead, "download")
        await env.sleep(timedelta(days=13))
        before = await handle.query(LeadWorkflow.state)
        await env.sleep(timedelta(days=9))  # 22 days idle: ticks at day 14 and day 21
        after = await handle.query(LeadWorkflow.state)
    assert before.score.behaviour_points == 30
    assert after.score.behaviour_points == 20
    assert after.score.tallies["decay"].points == -10
    assert any(t.kind == "decay" for t in after.timeline)


async def test_events_leave_the_sleeping_timer_alone_and_touches_still_come_on_time(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """``steady-wake-timer``: an event moves nothing earlier, so it cancels no timer and
    starts none (two commands and two history events saved per event)."""
    env = time_skipping_env
    lead = lead_id()
    async with running_engine(env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="sam@corp.example", first_name="Sam")
        await env.sleep(timedelta(hours=2))  # the first touch (hour 1) is out; day 3 is next
        before = await _timer_events(handle)
        for kind in ("email_open", "page_view", "email_open", "page_view", "email_open"):
            await engine.event(lead, kind)
            await env.sleep(timedelta(minutes=10))
        during = await _timer_events(handle)
        await env.sleep(timedelta(days=4))  # the follow-up touch is due on day 3
        state = await handle.query(LeadWorkflow.state)

    assert state.events_applied == 5
    assert during == before  # five events: no timer cancelled or started
    assert [m.subject for m in standin.messages_with(lead_id=lead)] == ["Hello Sam", "Following up"]


async def _timer_events(handle) -> Counter[str]:  # type: ignore[no-untyped-def]
    history = await handle.fetch_history()
    return Counter(
        EventType.Name(e.event_type)
        for e in history.events
        if e.event_type in (EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_TIMER_CANCELED)
    )
