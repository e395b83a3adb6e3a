"""The rules and templates we ship: valid, realistic, and a whole enterprise cadence through
the real SendGrid client under time skipping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from nurture.config.config_loader import DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR, load_rules
from nurture.domain.send_window import SendWindow
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, running_engine
from workflows.lead import LeadWorkflow


def test_the_shipped_cadences_are_about_twelve_touches_over_eight_weeks() -> None:
    rules = load_rules(DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR)
    nurture = [c for c in rules.cadences.cadences if not c.recycle]
    assert len(nurture) >= 2 and any(c.segment for c in nurture)
    for cadence in nurture:
        span = sum((s.delay for s in cadence.steps), timedelta())
        assert 10 <= len(cadence.steps) <= 14
        assert timedelta(weeks=6) <= span <= timedelta(weeks=10)
    assert rules.cadences.recycle_cadence.steps


async def test_the_shipped_enterprise_cadence_sends_its_touches_within_window_and_cap(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    rules = load_rules(DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR)
    enterprise = rules.cadences.get("enterprise")
    assert enterprise is not None and rules.cadences.frequency_cap is not None
    emails = [s for s in enterprise.steps if s.channel == "email"]
    calls = [s for s in enterprise.steps if s.channel == "call"]
    assert len(emails) == 12 and len(calls) == 1
    span = sum((s.delay for s in enterprise.steps), timedelta())
    lead = lead_id()
    async with running_engine(
        time_skipping_env.client,
        standin,
        tmp_path,
        config_dir=DEFAULT_CONFIG_DIR,
        templates_dir=DEFAULT_TEMPLATES_DIR,
    ) as engine:
        handle = await engine.profile(
            lead_id=lead,
            email="ines@bigco.example",
            first_name="Ines",
            company="BigCo",
            company_size=5000,
            industry="manufacturing",
            region="EMEA",
            timezone="Europe/Berlin",
            phone="+49 30 1234567",
        )
        # Windows and the cap stretch the cadence; nothing is dropped.
        await time_skipping_env.sleep(span + timedelta(weeks=3))  # before cycle 2 (4 w on)
        state = await handle.query(LeadWorkflow.state)

    sent = standin.messages_with(lead_id=lead, category="touch")
    assert [m.custom_args["nurture_key"].rsplit(":", 1)[-1] for m in sent] == [
        s.name for s in emails
    ]
    assert all(m.from_email == rules.cadences.sender.email for m in sent)
    assert all(
        "Ines" in m.contents["text/html"] or "BigCo" in m.contents["text/html"] for m in sent
    )
    assert all("{{" not in m.subject and m.contents["text/plain"].strip() for m in sent)
    assert state.segment == "enterprise" and state.touches_sent == 12
    assert state.touches_deferred > 0
    berlin = ZoneInfo("Europe/Berlin")
    send_times = [t.at for t in state.timeline if t.kind == "touch"]
    assert len(send_times) == 12
    for at in send_times:
        local = at.astimezone(berlin)
        assert local.weekday() < 5 and 8 <= local.hour < 18, local
    cap = rules.cadences.frequency_cap
    for at in send_times:
        in_window = [t for t in send_times if at - cap.per < t <= at]
        assert len(in_window) <= cap.max_emails
    (task,) = state.tasks
    assert task.channel == "call" and task.step == "discovery_call"
    assert task.status == "expired"  # nobody called: the cadence moved on without it


def test_a_time_scaled_demo_sends_at_any_hour_but_keeps_the_scaled_cap() -> None:
    """Office hours cannot be compressed: under --time-scale the send window is off."""
    real = load_rules(DEFAULT_CONFIG_DIR)
    demo = load_rules(DEFAULT_CONFIG_DIR, time_scale=3600)
    assert real.cadences.send_window.days == (0, 1, 2, 3, 4)
    assert demo.cadences.send_window == SendWindow.anytime()
    assert all(demo.cadences.window_for(c) == SendWindow.anytime() for c in demo.cadences.cadences)
    assert real.cadences.frequency_cap is not None and demo.cadences.frequency_cap is not None
    assert demo.cadences.frequency_cap.per == real.cadences.frequency_cap.per / 3600
