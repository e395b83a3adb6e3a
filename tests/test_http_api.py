"""The HTTP API on a real dev server: batch ingest (good items applied once, also when a batch
is posted twice; bad ones reported per item), CSV import, API keys per role, and a rep key
that can neither read nor act on another rep's lead. No key ever reaches a log line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nurture.access.auth import revoke_key
from nurture.runtime.logging import configure_logging
from nurture.store.db import make_engine
from tests.conftest import lead_id, wait_for_state

if TYPE_CHECKING:
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]  # the `api` fixture: the service with a worker

ROOT = Path(__file__).parent.parent


async def test_a_mixed_batch_applies_good_items_once_even_when_posted_twice(api: Api) -> None:
    a, b = lead_id("batch"), lead_id("batch")
    batch = [
        {"lead_id": a, "type": "page_view", "url": "https://x/p", "at": "2026-11-24T09:00:00Z"},
        {"lead_id": a, "url": "https://x/missing-type"},
        {"lead_id": b, "type": "form_fill", "event_id": "form-1"},
        {"lead_id": b, "type": "download", "at": "2026-11-24T09:00:00"},
        {"lead_id": a, "type": "teleport", "at": "2026-11-24T09:00:00Z"},
        {"lead_id": a, "type": "download"},  # no id of its own: the Idempotency-Key gives one
        "not an object",
    ]
    headers = {**api.auth("ingest"), "Idempotency-Key": "batch-42"}
    first = await api.http.post("/api/events", json=batch, headers=headers)
    again = await api.http.post("/api/events", json=batch, headers=headers)

    assert first.status_code == 200, first.text
    result = first.json()
    assert (result["accepted"], result["rejected"], result["failed"]) == (3, 4, 0)
    statuses = [item["status"] for item in result["items"]]
    assert statuses == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
    ]
    errors = {item["index"]: item["errors"][0] for item in result["items"] if item["errors"]}
    assert errors[1]["loc"] == ["type"] and errors[1]["type"] == "missing"
    assert errors[3]["loc"] == ["at"] and "time zone" in errors[3]["msg"]
    assert "unknown event type 'teleport'" in errors[4]["msg"]
    assert errors[6]["type"] == "model_type"
    assert result["items"][5]["event_id"].startswith("idem-")
    assert again.json()["items"] == result["items"]
    alone = await api.http.post("/api/events", json=[batch[5]], headers=headers)  # resent alone
    assert alone.json()["items"][0]["event_id"] == result["items"][5]["event_id"]

    handle_a = api.engine.client.get_workflow_handle(f"lead-{a}")
    handle_b = api.engine.client.get_workflow_handle(f"lead-{b}")
    state_a = await wait_for_state(handle_a, lambda s: s.duplicates_ignored == 3)
    state_b = await wait_for_state(handle_b, lambda s: s.duplicates_ignored == 1)
    assert state_a.events_applied == 2 and state_b.events_applied == 1

    everything_bad = await api.http.post("/api/events", json=[{"type": "x"}], headers=headers)
    assert everything_bad.status_code == 422


async def test_csv_import_over_http_and_from_the_cli(api: Api, tmp_path: Path) -> None:
    ids = [lead_id("csv") for _ in range(3)]
    csv = (
        "lead_id,email,first_name,company_size,custom.plan,address\n"
        f'{ids[0]},a@corp.example,Ann,900,gold,"1 Main St\r\nSpringfield"\n'
        f"{ids[1]},not-an-email,Ben,,,\n"
        f"{ids[2]},c@corp.example,Cy,12,,\n"
    )
    answer = await api.http.post(
        "/api/leads/import",
        content=csv,
        headers={**api.auth("marketer"), "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    (bad,) = [i for i in body["items"] if i["status"] == "rejected"]
    assert bad["index"] == 3 and bad["errors"][0]["loc"] == ["email"]  # line 3 of the file
    handle = api.engine.client.get_workflow_handle(f"lead-{ids[0]}")
    state = await wait_for_state(handle, lambda s: s.segment is not None)
    assert state.profile.custom == {"plan": "gold"} and state.segment == "enterprise"
    assert state.profile.address == "1 Main St\r\nSpringfield"  # a quoted multi-line cell
    latin1 = await api.http.post(
        "/api/leads/import",
        content="lead_id,first_name\nx1,Zoë\n".encode("latin-1"),
        headers={**api.auth("marketer"), "Content-Type": "text/csv"},
    )
    assert latin1.status_code == 422 and "not UTF-8" in latin1.json()["detail"]
    refused = await api.http.post(
        "/api/leads/import", content=csv, headers={**api.auth("ingest"), "Content-Type": "text/csv"}
    )
    assert refused.status_code == 403

    path = tmp_path / "leads.csv"
    path.write_text(csv.replace("csv-", "cli-"))
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": api.engine.client.service_client.config.target_host,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(ROOT / "starter.py"),
            "lead",
            "add",
            str(path),
            "--json",
            "--task-queue",
            api.engine.task_queue,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1 and (report["applied"], report["rejected"]) == (2, 1)
    # The CLI names the line the row starts on in the file (row 1's quoted cell spans two).
    assert report["errors"][0]["line"] == 4 and "email" in report["errors"][0]["reason"]


async def test_keys_and_roles_and_a_rep_sees_and_acts_on_own_leads_only(
    api: Api, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging(level="INFO", json_logs=True)
    lead = lead_id("owned")
    await api.engine.profile(lead_id=lead, email="o@corp.example", region="EMEA")
    state = await api.engine.request_call(lead)
    owner, other = state.owner, ({"alice", "bob"} - {state.owner}).pop()
    assert owner in ("alice", "bob")
    url = f"/api/leads/{lead}"

    assert (await api.http.get(url)).status_code == 401
    bad = await api.http.get(url, headers={"Authorization": "Bearer nk_0000000000_" + "x" * 43})
    assert bad.status_code == 401
    assert (await api.http.get(url, headers=api.auth("ingest"))).status_code == 403
    reject = {"reason": "not a fit"}
    for method, path, body in [
        ("GET", url, None),
        ("POST", f"{url}/accept", {}),
        ("POST", f"{url}/contact", {}),
        ("POST", f"{url}/reject", reject),
        ("POST", f"{url}/outcome", {"result": "won"}),
    ]:
        # Finding 17: another rep's lead is answered exactly as a lead that does not exist.
        answer = await api.http.request(method, path, json=body, headers=api.auth(other))
        unknown = await api.http.request(
            method, path.replace(lead, "no-such-lead"), json=body, headers=api.auth(other)
        )
        assert answer.status_code == unknown.status_code == 404, (path, answer.text)
        assert answer.json()["detail"] == unknown.json()["detail"].replace("no-such-lead", lead)
        assert owner not in answer.text
    as_other = await api.http.post(f"{url}/accept", json={"rep": other}, headers=api.auth(owner))
    assert as_other.status_code == 403

    seen = await api.http.get(url, headers=api.auth(owner))
    assert seen.status_code == 200 and seen.json()["state"]["owner"] == owner
    view = seen.json()
    assert {"rule": "instant qualify", "points": 0, "times": 1} in view["explanation"]
    assert sum(line["points"] for line in view["explanation"]) == view["score"]
    assert (await api.http.get(url, headers=api.auth("marketer"))).status_code == 200
    premature = await api.http.post(
        f"{url}/outcome", json={"result": "won"}, headers=api.auth(owner)
    )
    assert (
        premature.status_code == 409 and "accept or contact it first" in premature.json()["detail"]
    )
    accepted = await api.http.post(f"{url}/accept", headers=api.auth(owner))
    assert accepted.status_code == 200 and accepted.json()["stage"] == "working"
    nameless = await api.http.post(f"{url}/reject", json=reject, headers=api.auth("operator"))
    assert nameless.status_code == 422
    returned = await api.http.post(
        f"{url}/reject", json={**reject, "rep": owner}, headers=api.auth("operator")
    )
    assert returned.status_code == 200 and returned.json()["stage"] == "recycled"
    missing = await api.http.get("/api/leads/nobody-here", headers=api.auth("operator"))
    assert missing.status_code == 404

    key_id = api.keys["marketer"].split("_")[1]
    revoke_key(make_engine(api.engine.database_url), key_id)
    assert (await api.http.get(url, headers=api.auth("marketer"))).status_code == 401

    logged = capsys.readouterr()
    for key in api.keys.values():
        secret = key.split("_", 2)[2]
        assert secret not in logged.out and secret not in logged.err


async def test_thousands_of_events_in_one_request_each_reach_their_lead_once(api: Api) -> None:
    leads = [lead_id("bulk") for _ in range(20)]
    batch = [
        {
            "lead_id": leads[n % 20],
            "type": "page_view",
            "url": f"https://x/page/{n}",
            "at": f"2026-11-24T09:{n // 60 % 60:02d}:{n % 60:02d}Z",
        }
        for n in range(2000)
    ]
    first = await api.http.post("/api/events", json=batch, headers=api.auth("ingest"))
    again = await api.http.post("/api/events", json=batch, headers=api.auth("ingest"))
    assert first.status_code == again.status_code == 200
    assert first.json()["accepted"] == again.json()["accepted"] == 2000

    handles = [api.engine.client.get_workflow_handle(f"lead-{lead}") for lead in leads]
    states = [
        await wait_for_state(h, lambda s: s.events_applied + s.duplicates_ignored == 200)
        for h in handles
    ]
    assert [s.events_applied for s in states] == [100] * 20
    assert [s.duplicates_ignored for s in states] == [100] * 20
