"""A CRM status change that arrives while Temporal cannot answer is refused with 503, so the
CRM delivers it again, instead of a 500 or a 200 that would drop it."""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi import FastAPI
from fastapi.testclient import TestClient
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.temporal import installed_binary
from nurture.web.crm_webhook import SIGNATURE_HEADER, CrmWebhook

SECRET = "crm-webhook-secret"


async def test_a_crm_change_while_temporal_is_down_is_answered_503() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
    )
    client: Client = env.client
    await env.shutdown()  # the server is gone; the client stays
    app = FastAPI()
    app.include_router(CrmWebhook(client, SECRET).router())
    body = json.dumps({"Nurture_Lead_Id__c": "ada", "Status": "Working - Contacted"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with TestClient(app) as http:
        answer = http.post(
            "/webhooks/crm",
            content=body,
            headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
        )
    assert answer.status_code == 503, answer.text
    assert "deliver this change again" in answer.json()["detail"]
