"""`nurture audit` finds leads at risk of being lost, from Temporal visibility (dev server)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from nurture.cli.audit import AuditReport, audit
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, running_engine

FAST_SLA = 14400.0  # 4h -> 1s


async def _audit_until(
    env: WorkflowEnvironment, leads: set[str], done: object, tries: int = 60
) -> AuditReport:
    """Visibility is eventually consistent: poll until ``done(report)`` holds."""
    for _ in range(tries):
        report = await audit(env.client, grace=timedelta(0))
        if done(report):  # type: ignore[operator]
            return report
        await asyncio.sleep(0.25)
    raise AssertionError(f"audit never saw the expected state for {leads}: {report.problems}")


async def test_audit_flags_a_missed_sla_nobody_escalated_and_a_dead_workflow(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    stuck, dead, fine = lead_id("stuck"), lead_id("dead"), lead_id("fine")
    async with running_engine(dev_env.client, standin, tmp_path, time_scale=FAST_SLA) as engine:
        for lead in (stuck, dead, fine):
            await engine.profile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA")
        for lead in (stuck, dead):
            await engine.request_call(lead)
        # Visibility shows them assigned with an owner and a running SLA: nothing at risk.
        mine = {stuck, dead, fine}
        healthy = await _audit_until(
            dev_env,
            mine,
            lambda r: (
                {row["lead_id"]: row["stage"] for row in r.rows if row["lead_id"] in mine}
                == {stuck: "assigned", dead: "assigned", fine: "nurturing"}
            ),
        )
        assert not [p for p in healthy.problems if p["lead_id"] in mine]
    # No worker any more: the SLA timers come due and nobody escalates.
    await dev_env.client.get_workflow_handle(f"lead-{dead}").terminate("operator mistake")
    await asyncio.sleep(1.5)
    report = await _audit_until(
        dev_env, mine, lambda r: len([p for p in r.problems if p["lead_id"] in mine]) == 2
    )
    problems = {p["lead_id"]: p["problem"] for p in report.problems if p["lead_id"] in mine}
    assert problems[stuck] == "past its SLA deadline, not escalated"
    assert problems[dead].startswith("workflow terminated")
    assert fine not in problems


async def test_operators_find_leads_by_the_search_attributes_the_readme_shows(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    campaign = lead_id("campaign")  # unique, so only this test's leads match
    hot, cold = lead_id("hot"), lead_id("cold")
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        for lead in (hot, cold):
            await engine.profile(
                lead_id=lead,
                email=f"{lead}@corp.example",
                region="EMEA",
                title="VP Sales",
                company_size=900,
                campaign=campaign,
            )
        await engine.request_call(hot)
        queries = {
            f'LeadCampaign = "{campaign}" AND LeadStage = "assigned" AND LeadOwner = "alice"': {
                f"lead-{hot}"
            },
            f'LeadCampaign = "{campaign}" AND LeadStage = "nurturing"'
            ' AND LeadSegment = "enterprise" AND LeadGrade = "A" AND LeadScore >= 25': {
                f"lead-{cold}"
            },
            f'LeadCampaign = "{campaign}" AND SlaDueAt > "2026-01-01T00:00:00Z"': {f"lead-{hot}"},
        }
        for query, expected in queries.items():
            found: set[str] = set()
            for _ in range(60):
                found = {wf.id async for wf in dev_env.client.list_workflows(query)}
                if found == expected:
                    break
                await asyncio.sleep(0.25)
            assert found == expected, query
