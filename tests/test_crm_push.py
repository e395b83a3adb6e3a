"""CRM push against a Salesforce-shaped stand-in on loopback, through real HTTP: the lead
arrives at handoff with the standard fields and the story, later activity follows as Tasks,
a rep's reject in the CRM comes back as the same update as a reject in Nurture, and a CRM
outage is retried, not lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from nurture.config.settings import CrmSettings
from nurture.standins.crm_standin import SalesforceStandIn
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import (
    TEST_RULES,
    lead_id,
    running_engine,
    wait_for_email,
    wait_for_state,
    wait_until,
)
from tests.scenarios import crm_rules, crm_user
from workflows.lead import LeadWorkflow

CRM_SECRET = "crm-webhook-secret-123"


def settings(salesforce: SalesforceStandIn) -> CrmSettings:
    return CrmSettings(base_url=salesforce.url, client_id="nurture", client_secret="s3cret")


async def test_handoff_pushes_the_lead_then_activity_and_a_crm_reject_comes_back(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    salesforce: SalesforceStandIn,
    tmp_path: Path,
) -> None:
    lead = lead_id("crm")
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        config_dir=crm_rules(tmp_path),
        time_scale=14400,
        web=True,
        crm=settings(salesforce),
        crm_webhook_secret=CRM_SECRET,
    ) as engine:
        await engine.profile(
            lead_id=lead,
            email="ida@corp.example",
            first_name="Ida",
            last_name="Kay",
            company="Corp",
            title="VP Sales",
            region="EMEA",
            campaign="webinar-q4",
        )
        state = await engine.request_call(lead)
        await wait_until(lambda: salesforce.lead_by_external_id(lead) is not None)
        record = salesforce.lead_by_external_id(lead)
        assert record is not None
        assert (record["FirstName"], record["LastName"], record["Company"]) == (
            "Ida",
            "Kay",
            "Corp",
        )
        assert record["Email"] == "ida@corp.example" and record["Title"] == "VP Sales"
        assert record["LeadSource"] == "webinar-q4" and record["Status"] == "Open - Not Contacted"
        reps = [r["id"] for r in yaml.safe_load((TEST_RULES / "routing.yaml").read_text())["reps"]]
        assert record["OwnerId"] == crm_user(reps.index(state.owner or ""))
        assert state.grade == "B" and record["Rating"] == "Warm"  # senior title: grade B
        assert "Sales-ready because: instant: requested_call" in record["Description"]

        await engine.event(lead, "page_view", url="https://corp.example/pricing")
        await wait_until(lambda: len(salesforce.tasks_for(record["Id"])) == 1)
        (task,) = salesforce.tasks_for(record["Id"])
        assert "page_view https://corp.example/pricing" in task["Description"]

        salesforce.set_outbound(f"{engine.web_url}/webhooks/crm", CRM_SECRET)
        status = await asyncio.to_thread(
            salesforce.rep_changes_status, lead, "Closed - Not Converted", "no budget this year"
        )
        assert status == 200
        handle = engine.client.get_workflow_handle(f"lead-{lead}")
        state = await wait_for_state(handle, lambda s: s.stage == "recycled")
        assert state.rejections[-1].reason == "no budget this year"
        assert state.cadence is not None and state.cadence.cadence_id == "recycle"
        history = await handle.fetch_history()
        replayed = await Replayer(
            workflows=[LeadWorkflow], data_converter=engine.client.data_converter
        ).replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None  # the CRM queue runs deterministically
        salesforce.set_outbound(f"{engine.web_url}/webhooks/crm", "wrong-secret")
        refused = await asyncio.to_thread(
            salesforce.rep_changes_status, lead, "Closed - Converted", None
        )
        assert refused == 403  # not signed with our secret
    assert len(salesforce.leads) == 1  # every push was an upsert of the same record


async def test_a_crm_outage_is_retried_and_the_lead_arrives_once(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    salesforce: SalesforceStandIn,
    tmp_path: Path,
) -> None:
    lead = lead_id("outage")
    salesforce.down()
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        config_dir=crm_rules(tmp_path),
        time_scale=14400,
        crm=settings(salesforce),
    ) as engine:
        await engine.profile(lead_id=lead, email="oz@corp.example", last_name="Oz", region="EMEA")
        state = await engine.request_call(lead)
        # The CRM being down holds back nothing else: the rep is alerted all the same.
        await wait_for_email(standin, lead, "handoff")
        await asyncio.sleep(2.5)  # retries against a CRM that is down
        assert salesforce.lead_by_external_id(lead) is None
        salesforce.up()
        salesforce.fail_next(503)  # and one more hiccup when it comes back
        await wait_until(lambda: salesforce.lead_by_external_id(lead) is not None, timeout=30)
        handle = engine.client.get_workflow_handle(f"lead-{lead}")
        state = await wait_for_state(handle, lambda s: s.stage == "assigned")
    assert len(salesforce.leads) == 1
    assert state.last_error is None
