"""The rules and templates we ship: valid, realistic, and a whole enterprise cadence through
the real SendGrid client under time skipping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from nurture.config_loader import DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR, load_rules
from nurture.sendgrid_standin import SendGridStandIn
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


async def test_the_shipped_enterprise_cadence_sends_its_twelve_rendered_touches(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    rules = load_rules(DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR)
    enterprise = rules.cadences.get("enterprise")
    assert enterprise is not None
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
        )
        await time_skipping_env.sleep(span + timedelta(days=1))
        state = await handle.query(LeadWorkflow.state)

    sent = standin.messages_with(lead_id=lead, category="touch")
    assert len(sent) == len(enterprise.steps) == 12
    assert [m.custom_args["nurture_key"].rsplit(":", 1)[-1] for m in sent] == [
        s.name for s in enterprise.steps
    ]
    assert all(m.from_email == rules.cadences.sender.email for m in sent)
    assert all(
        "Ines" in m.contents["text/html"] or "BigCo" in m.contents["text/html"] for m in sent
    )
    assert all("{{" not in m.subject and m.contents["text/plain"].strip() for m in sent)
    assert state.segment == "enterprise" and state.touches_sent == 12
