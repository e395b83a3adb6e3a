"""Finding 8 of issue 13: the CRM webhook took replays. A status change from the CRM is
applied only when it is signed over its timestamp and body, fresh, not seen before, and about
the lead's current hand-off; an old "Closed - Not Converted" replayed after the lead was handed
off again must not recycle the new hand-off and blame its new owner."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from nurture.config.settings import CrmSettings
from nurture.standins.crm_standin import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    OutboundDelivery,
    SalesforceStandIn,
)
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.web.crm_webhook import sign
from tests.conftest import lead_id, running_engine, wait_for_state, wait_until
from tests.scenarios import crm_rules

SECRET = "crm-webhook-secret-replay"


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": "application/json", **headers})


def signed(body: bytes, timestamp: str) -> dict[str, str]:
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(SECRET, timestamp, body)}


def as_sent(delivery: OutboundDelivery) -> dict[str, str]:
    return {TIMESTAMP_HEADER: delivery.timestamp, SIGNATURE_HEADER: delivery.signature}


async def test_a_replayed_or_earlier_handoff_crm_change_does_not_touch_the_new_handoff(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    salesforce: SalesforceStandIn,
    tmp_path: Path,
) -> None:
    """Finding 8: replays (same post, an old post, body-only signature) and a change about an
    earlier hand-off are refused; a genuine change about the current hand-off applies."""
    lead = lead_id("replay")
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        config_dir=crm_rules(tmp_path),
        time_scale=14400,
        web=True,
        crm=CrmSettings(base_url=salesforce.url, client_id="nurture", client_secret="s3cret"),
        crm_webhook_secret=SECRET,
    ) as engine:
        hook = f"{engine.web_url}/webhooks/crm"
        handle = await engine.profile(lead_id=lead, email="ida@corp.example", last_name="Kay")
        await engine.request_call(lead)
        await wait_until(lambda: salesforce.lead_by_external_id(lead) is not None)
        salesforce.set_outbound(hook, SECRET)
        status = await asyncio.to_thread(
            salesforce.rep_changes_status, lead, "Closed - Not Converted", "no budget"
        )
        assert status == 200
        rejection = salesforce.outbound_deliveries[-1]
        assert rejection.notification["Nurture_Handoff__c"] == 1
        await wait_for_state(handle, lambda s: s.stage == "recycled")

        await engine.event(lead, "requested_call")  # handed off again
        second = await wait_for_state(handle, lambda s: s.stage == "assigned" and s.handoffs == 2)
        record = salesforce.lead_by_external_id(lead)
        await wait_until(
            lambda: (salesforce.lead_by_external_id(lead) or {}).get("Nurture_Handoff__c") == "2"
        )

        # The captured post, sent again as it was: seen before, nothing applied.
        again = await asyncio.to_thread(post, hook, rejection.payload, as_sent(rejection))
        assert again.status_code == 200, again.text
        assert again.json()["applied"] is False and "already received" in again.json()["detail"]
        # The same post captured ten minutes ago: stale.
        old = str(int(time.time()) - 600)
        stale = await asyncio.to_thread(
            post, hook, rejection.payload, signed(rejection.payload, old)
        )
        assert stale.status_code == 403 and "stale" in stale.json()["detail"]
        # Signed the old way, over the body only: refused.
        body_only = (
            "sha256=" + hmac.new(SECRET.encode(), rejection.payload, hashlib.sha256).hexdigest()
        )
        unsigned = await asyncio.to_thread(
            post, hook, rejection.payload, {SIGNATURE_HEADER: body_only}
        )
        assert unsigned.status_code == 403
        # A new, fresh, signed notification - but about the first hand-off: 409.
        late = json.loads(rejection.payload) | {"NotificationId": str(uuid.uuid4())}
        late_body = json.dumps(late).encode()
        earlier = await asyncio.to_thread(
            post, hook, late_body, signed(late_body, str(int(time.time())))
        )
        assert earlier.status_code == 409, earlier.text
        assert "hand-off 1" in earlier.json()["detail"] and "hand-off 2" in earlier.json()["detail"]

        # One that does not say which hand-off (a record pushed by an older version): only a
        # lead handed off once could be meant, and this one was handed off twice.
        vague = json.loads(late_body) | {"NotificationId": str(uuid.uuid4())}
        vague.pop("Nurture_Handoff__c")
        vague_body = json.dumps(vague).encode()
        unsure = await asyncio.to_thread(
            post, hook, vague_body, signed(vague_body, str(int(time.time())))
        )
        assert unsure.status_code == 409, unsure.text

        state = await wait_for_state(handle, lambda s: True)
        assert (state.stage, state.owner, state.handoffs) == ("assigned", second.owner, 2)
        assert len(state.rejections) == 1  # the new owner is not blamed
        assert record is not None

        # The rep's real change about the current hand-off goes through.
        status = await asyncio.to_thread(salesforce.rep_changes_status, lead, "Working - Contacted")
        assert status == 200
        assert salesforce.outbound_deliveries[-1].notification["Nurture_Handoff__c"] == 2
        await wait_for_state(handle, lambda s: s.stage == "working")
