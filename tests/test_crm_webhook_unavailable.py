"""A CRM status change that arrives while Temporal cannot answer is refused with 503, so the
CRM delivers it again, instead of a 500 or a 200 that would drop it; and its redelivery is not
mistaken for a replay."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.client.temporal import installed_binary
from nurture.store.db import make_engine
from nurture.web.crm_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, CrmWebhook, sign
from nurture.web.event_store import EventStore

SECRET = "crm-webhook-secret"


async def test_a_crm_change_while_temporal_is_down_is_answered_503(tmp_path: Path) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
    )
    client: Client = env.client
    await env.shutdown()  # the server is gone; the client stays
    app = FastAPI()
    store = EventStore(make_engine(f"sqlite:///{tmp_path / 'nurture.db'}"))
    app.include_router(CrmWebhook(client, SECRET, store).router())
    body = json.dumps(
        {
            "NotificationId": "n-1",
            "Nurture_Lead_Id__c": "ada",
            "Nurture_Handoff__c": 1,
            "Status": "Working - Contacted",
        }
    ).encode()
    with TestClient(app) as http:
        for _delivery in range(2):  # the CRM's redelivery is let in, not taken for a replay
            timestamp = str(int(time.time()))
            answer = http.post(
                "/webhooks/crm",
                content=body,
                headers={
                    SIGNATURE_HEADER: sign(SECRET, timestamp, body),
                    TIMESTAMP_HEADER: timestamp,
                    "Content-Type": "application/json",
                },
            )
            assert answer.status_code == 503, answer.text
            assert "deliver this change again" in answer.json()["detail"]
