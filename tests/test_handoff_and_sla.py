"""Handoff the instant a lead is sales-ready, routing, and the SLA clock (time-skipping)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from nurture.domain.leads import workflow_id_for
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, lead_state, running_engine, wait_for_email, wait_for_state


async def test_crossing_the_threshold_mid_cadence_hands_off_at_once_with_the_story(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    env = time_skipping_env
    lead = lead_id()
    async with running_engine(env.client, standin, tmp_path) as engine:
        handle = await engine.profile(
            lead_id=lead,
            email="li@corp.example",
            first_name="Li",
            region="EMEA",
            title="VP Sales",
            campaign="webinar-q4",
        )
        await env.sleep(timedelta(days=4))  # first general-cadence touch goes out
        assert len(standin.messages_with(lead_id=lead, category="touch")) == 2
        for kind in ("form_fill", "download"):
            await engine.event(lead, kind, url="https://corp.example/whitepaper")
        state = await wait_for_state(handle, lambda s: s.score.total == 45)
        assert state.stage == "nurturing"
        await engine.event(lead, "email_click")
        state = await wait_for_state(handle, lambda s: s.stage == "assigned")

        assert state.owner == "alice" and state.cadence is None
        assert state.score.total == 50 and state.handoff is not None
        story = state.handoff.story
        assert story.campaign == "webinar-q4"
        assert story.qualified_by == "score 50 reached threshold 50 on email_click"
        assert story.fit == {"senior title": 15}
        assert [row[0] for row in story.top_behaviours][:2] == ["form_fill", "download"]
        await wait_for_email(standin, lead, "handoff")
        alert = standin.messages_with(lead_id=lead, category="handoff")[0]
        assert alert.to == ["alice@test.example"]
        assert (
            "Qualified by: score 50 reached threshold 50 on email_click"
            in alert.contents["text/html"]
        )
        touches_at_handoff = len(standin.messages_with(lead_id=lead, category="touch"))
        await env.sleep(timedelta(weeks=3))  # the cadence would have sent its second cycle
        assert len(standin.messages_with(lead_id=lead, category="touch")) == touches_at_handoff


async def test_instant_qualify_behaviour_hands_off_immediately_whatever_the_score(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        await engine.profile(lead_id=lead, email="x@corp.example", region="AMER")
        state = await engine.request_call(lead)
    assert state.score.total == 0
    assert state.owner == "chen"
    assert state.handoff is not None
    assert state.handoff.story.qualified_by == "instant: requested_call"


async def test_routing_uses_territory_specialists_round_robin_and_fallback(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    profiles = [
        {"region": "EMEA"},
        {"region": "EMEA"},
        {"region": "EMEA"},
        {"region": "AMER", "industry": "Healthcare"},
        {"region": "APAC"},
    ]
    owners = []
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        for fields in profiles:
            lead = lead_id()
            await engine.profile(lead_id=lead, email=f"{lead}@corp.example", **fields)
            owners.append((await engine.request_call(lead)).owner)
    assert owners == ["alice", "bob", "alice", "dana", "maria"]


async def test_sla_miss_escalates_and_reassigns_and_a_second_miss_escalates_again(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    env = time_skipping_env
    lead = lead_id()
    async with running_engine(env.client, standin, tmp_path) as engine:
        await engine.profile(lead_id=lead, email="sla@corp.example", region="EMEA")
        first = await engine.request_call(lead)
        handle = engine.client.get_workflow_handle(workflow_id_for(lead))
        assert first.owner == "alice" and first.handoff and first.handoff.sla_due_at
        assert first.handoff.sla_due_at - first.assignments[-1].at == timedelta(hours=4)

        await env.sleep(timedelta(hours=4, minutes=1))
        second = await wait_for_state(handle, lambda s: s.owner == "bob")
        assert second.stage == "assigned"
        await wait_for_email(standin, lead, "escalation")
        escalation = standin.messages_with(lead_id=lead, category="escalation")
        assert [m.to for m in escalation] == [["maria@test.example"]]
        await wait_for_email(standin, lead, "reassigned")
        assert standin.messages_with(lead_id=lead, category="reassigned")[0].to == [
            "bob@test.example"
        ]

        await env.sleep(timedelta(hours=4, minutes=1))
        third = await wait_for_state(handle, lambda s: len(s.handoff.escalations) == 2)  # type: ignore[union-attr]
        await wait_for_email(standin, lead, "escalation", count=3)

    assert third.handoff is not None
    assert [(e.missed_by, e.notified, e.reassigned_to) for e in third.handoff.escalations] == [
        ("alice", ["maria"], "bob"),
        ("bob", ["maria", "hana"], "maria"),
    ]
    assert third.owner == "maria" and third.stage == "assigned"
    assert sorted(m.to[0] for m in standin.messages_with(lead_id=lead, category="escalation")) == [
        "hana@test.example",
        "maria@test.example",
        "maria@test.example",
    ]
    assert [a.rep for a in third.assignments] == ["alice", "bob", "maria"]


async def test_new_activity_of_a_lead_in_sales_is_forwarded_to_its_owner(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        await engine.profile(lead_id=lead, email="fw@corp.example", region="AMER")
        await engine.request_call(lead)
        handle = await engine.event(lead, "page_view", url="https://corp.example/pricing")
        await wait_for_email(standin, lead, "activity")
        state = await lead_state(handle)
    digest = standin.messages_with(lead_id=lead, category="activity")[0]
    assert digest.to == ["chen@test.example"]
    assert "page_view https://corp.example/pricing" in digest.contents["text/html"]
    assert state.unforwarded == []
