"""Issue 15: operators keep their view. The codec server decodes a lead's encrypted history for
an operator (signed endpoint or operator key), for no one else, and the Temporal Web UI reads
the history through it as plain JSON (headless Chromium)."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from google.protobuf import json_format
from itsdangerous import URLSafeTimedSerializer
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.access.codec_links import CodecLinks
from nurture.client.temporal import installed_binary
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.domain.leads import workflow_id_for
from nurture.privacy.codec import EnvelopeCodec
from nurture.privacy.converter import encrypted_converter
from nurture.privacy.key_store import KeyStore, shred_keys
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.web.app import serving
from nurture.web.codec_api import CodecServer
from tests.conftest import ARTIFACTS, TEST_SECRET, lead_id, running_engine, wait_for_email
from tests.test_encrypted_histories import EMAIL, history_payloads

if TYPE_CHECKING:
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]  # the `api` fixture: the service with a worker

UI_ORIGIN = "http://127.0.0.1:8233"


def _body(payloads: list) -> dict:  # type: ignore[type-arg]
    return json_format.MessageToDict(Payloads(payloads=payloads))


async def _raw_payloads(api: Api, lead: str) -> list:  # type: ignore[type-arg]
    plain = await Client.connect(
        api.engine.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
    )
    return history_payloads(await plain.get_workflow_handle(workflow_id_for(lead)).fetch_history())


async def test_the_codec_server_decodes_for_operators_only(
    api: Api, key_store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead = lead_id("codec")
    await api.engine.profile(lead_id=lead, email=EMAIL, first_name="Ada", company_size=900)
    await wait_for_email(api.engine.standin, lead, "touch")
    encrypted = await _raw_payloads(api, lead)
    body = _body(encrypted)
    token = CodecLinks(TEST_SECRET, "http://x").token()

    signed = await api.http.post(f"/codec/{token}/decode", json=body)
    assert signed.status_code == 200, signed.text
    decoded = [base64.b64decode(p["data"]) for p in signed.json()["payloads"]]
    assert any(EMAIL.encode() in data for data in decoded)

    by_key = await api.http.post("/codec/decode", json=body, headers=api.auth("operator"))
    assert by_key.status_code == 200 and by_key.json() == signed.json()

    assert (await api.http.post("/codec/decode", json=body)).status_code == 401
    for role in ("marketer", "alice", "ingest"):
        refused = await api.http.post("/codec/decode", json=body, headers=api.auth(role))
        assert refused.status_code == 403, role
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, "x", "{{7*7}}", "<b>"):
        assert (await api.http.post(f"/codec/{bad}/decode", json=body)).status_code in (403, 404)

    # Forged payloads (a nonce too short, no data, a key name not ours) come back as given.
    key_id = encrypted[0].metadata["encryption-key-id"]
    metadata: dict[str, bytes]
    for metadata in (
        {"encoding": b"binary/encrypted", "encryption-key-id": key_id},
        {"encoding": b"binary/encrypted", "encryption-key-id": b"\xff\xff\xff"},
        {"encoding": b"binary/encrypted"},
    ):
        for data in (b"AAAA", b"", b"x" * 40):
            given = _body([Payload(metadata=metadata, data=data)])
            answer = await api.http.post(f"/codec/{token}/decode", json=given)
            assert answer.status_code == 200 and answer.json() == given, (metadata, data)

    # An expired or out-of-range signed endpoint is refused, not a 500.
    real = time.time()
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real - 3 * 86400)
    expired = CodecLinks(TEST_SECRET, "http://x").token(timedelta(days=1))
    monkeypatch.undo()
    answer = await api.http.post(f"/codec/{expired}/decode", json=body)
    assert answer.status_code == 403 and "expired" in answer.json()["detail"]
    signer = URLSafeTimedSerializer(TEST_SECRET, salt="codec")
    for days in (-1, 0, 1e308, "x"):
        bad = signer.dumps({"days": days})
        assert (await api.http.post(f"/codec/{bad}/decode", json=body)).status_code == 403

    # Garbage is refused by name, never a 500.
    deep = b'{"payloads": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for garbage in (b"{", b"[]", b'{"payloads": 3}', deep):
        response = await api.http.post(f"/codec/{token}/decode", content=garbage)
        assert response.status_code == 422, garbage

    # CORS: the UI's origin may call from the browser; another origin may not.
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    ok = await api.http.options(
        f"/codec/{token}/decode", headers={"Origin": UI_ORIGIN, **preflight}
    )
    assert ok.headers.get("access-control-allow-origin") == UI_ORIGIN
    evil = await api.http.options(
        f"/codec/{token}/decode", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in evil.headers
    assert (
        "access-control-allow-origin"
        not in (await api.http.get("/healthz", headers={"Origin": UI_ORIGIN})).headers
    )  # the CORS policy is the codec's alone

    # Encoding (a signal's input typed in the UI) round-trips.
    plain = _body([pydantic_data_converter.payload_converter.to_payloads(["hello"])[0]])
    encoded = (await api.http.post(f"/codec/{token}/encode", json=plain)).json()
    assert (
        encoded["payloads"][0]["metadata"]["encoding"]
        == base64.b64encode(b"binary/encrypted").decode()
    )
    back = (await api.http.post(f"/codec/{token}/decode", json=encoded)).json()
    assert back == plain

    # After erasure the same history comes back as the ciphertext it is.
    await api.engine.client.get_workflow_handle(workflow_id_for(lead)).terminate("erased")
    shred_keys(key_store.engine, workflow_id_for(lead))
    await asyncio.sleep(1.1)
    after = (await api.http.post(f"/codec/{token}/decode", json=body)).json()
    assert after == json_format.MessageToDict(Payloads(payloads=encrypted))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_temporal_ui_reads_a_lead_through_the_codec_server(
    key_store: KeyStore,
    standin: SendGridStandIn,
    tmp_path: Path,
    browser,  # type: ignore[no-untyped-def]
) -> None:
    """A dev server whose UI is given our signed codec endpoint, as ``nurture up`` does."""
    links = CodecLinks(TEST_SECRET, "")
    ui_port = _free_port()
    origins = [f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"]
    codec_app = CodecServer(
        EnvelopeCodec(key_store), links, make_engine(f"sqlite:///{tmp_path / 'k.db'}"), origins
    ).app()
    async with serving(codec_app, "127.0.0.1", 0) as codec_url:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=installed_binary("temporal"),
            data_converter=encrypted_converter(key_store),
            search_attributes=SEARCH_ATTRIBUTES,
            ui=True,
            ui_port=ui_port,
            dev_server_extra_args=["--ui-codec-endpoint", f"{codec_url}/{links.token()}"],
        )
        try:
            lead = lead_id("ui")
            async with running_engine(env.client, standin, tmp_path) as engine:
                await engine.profile(lead_id=lead, email=EMAIL, first_name="Ada", company_size=900)
                await wait_for_email(standin, lead, "touch")
                handle = env.client.get_workflow_handle(workflow_id_for(lead))
                run_id = (await handle.describe()).run_id
                page = await browser.new_page()
                await page.goto(
                    f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/"
                    f"{workflow_id_for(lead)}/{run_id}/history"
                )
                ARTIFACTS.mkdir(exist_ok=True)
                try:
                    # The input, decrypted: its field names exist only in the plain JSON.
                    await page.get_by_text('"pending_facts"').first.wait_for(timeout=30_000)
                    await page.screenshot(path=str(ARTIFACTS / "temporal-ui-history.png"))
                    # The state query, answered by the worker and decrypted for the UI.
                    await page.get_by_text("Queries", exact=True).first.click()
                    await page.get_by_role("button", name="Run Query").click()
                    await page.get_by_text(EMAIL).first.wait_for(timeout=30_000)
                finally:
                    await page.screenshot(
                        path=str(ARTIFACTS / "temporal-ui-query.png"), full_page=True
                    )
        finally:
            await env.shutdown()
