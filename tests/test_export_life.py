"""A lead's export after a realistic life on the dev server: profile, an email sent through the
SendGrid stand-in and its open coming back signed, a call task done, behaviour over the
threshold, handoff pushed to the CRM stand-in, the rep's accept, an unsubscribe. The CLI and the
API give the same document, every kind of data is in it as it happened, and nothing of a second
lead sharing the company and the rep is."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from nurture.access.auth import create_key
from nurture.client.sales import act
from nurture.contract.messages import RepAction, TaskCompletion
from nurture.standins.crm_standin import SalesforceStandIn
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.salted import address_digest, salt_of
from tests.conftest import Engine, lead_id, running_engine, wait_for_state, wait_until
from tests.scenarios import crm_rules
from tests.test_crm_push import settings

ROOT = Path(__file__).parent.parent
SHARED = {"company": "Shared Health", "industry": "healthcare"}  # routing: always rep dana


def without_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "generated_at"}


async def export_by_cli(engine: Engine, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``nurture lead export …`` in a process of its own, on the engine's Temporal and database
    (in a thread: the worker runs on this event loop and must keep running)."""
    env = {
        **os.environ,
        "NURTURE_DATABASE_URL": engine.database_url,
        "TEMPORAL_ADDRESS": engine.client.service_client.config.target_host,
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "starter.py"), "lead", "export", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )


async def api_export(http: httpx.AsyncClient, lead: str, key: str) -> dict[str, Any]:
    answer = await http.get(f"/api/leads/{lead}/export", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def live_a_life(engine: Engine, salesforce: SalesforceStandIn, lead: str) -> None:
    handle = await engine.profile(
        lead_id=lead,
        email=f"{lead}@mail.example",
        first_name="Ada",
        last_name="Lovelace",
        title="VP Research",
        phone="+44 20 7946 0000",
        address="12 St James's Square, London",
        custom={"track": "multichannel"},
        **SHARED,
    )
    state = await wait_for_state(handle, lambda s: bool(s.tasks), timeout=15)  # intro, then call
    (intro,) = engine.standin.messages_with(lead_id=lead, category="touch")
    await asyncio.to_thread(engine.standin.emit_events, intro.message_id, [{"event": "open"}])
    await act(
        engine.client,
        lead,
        "complete_task",
        TaskCompletion(rep="alice", task_key=state.tasks[0].key, outcome="connected"),
    )
    await engine.event(lead, "form_fill", event_id=f"{lead}-form")
    await engine.event(lead, "download", event_id=f"{lead}-paper")
    state = await wait_for_state(handle, lambda s: s.stage == "assigned")
    assert state.owner == "dana"
    await act(engine.client, lead, "accept", RepAction(rep="dana"))
    await engine.event(lead, "page_view", url="https://shared.example/pricing")
    await wait_until(lambda: salesforce.lead_by_external_id(lead) is not None)
    await asyncio.to_thread(
        engine.standin.emit_events, intro.message_id, [{"event": "unsubscribe"}]
    )
    await wait_for_state(handle, lambda s: s.email_suppressed is not None)


async def test_export_holds_every_kind_of_data_the_same_by_cli_and_api_and_nothing_of_another_lead(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    salesforce: SalesforceStandIn,
    tmp_path: Path,
) -> None:
    ada, bea = lead_id("ada"), lead_id("bea")
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        config_dir=crm_rules(tmp_path),
        time_scale=3600,  # the call task an hour after the intro: a second
        web=True,
        crm=settings(salesforce),
    ) as engine:
        db = make_engine(engine.database_url)
        operator = create_key(db, "operator", "ops")[1]
        await live_a_life(engine, salesforce, ada)
        await engine.profile(lead_id=bea, email=f"{bea}@mail.example", first_name="Bea", **SHARED)
        assert (await engine.request_call(bea)).owner == "dana"  # the same rep, the same company

        async with httpx.AsyncClient(base_url=engine.web_url or "", timeout=30) as http:
            other = await api_export(http, bea, operator)
            # The lead still forwards its last activity to its owner for a moment: the CLI's
            # document is compared with the API's from before and after it, once those agree.
            for _ in range(20):
                document = await api_export(http, ada, operator)
                printed = await export_by_cli(engine, tmp_path, ada, "--json")
                summed = await export_by_cli(engine, tmp_path, ada)
                if without_time(await api_export(http, ada, operator)) == without_time(document):
                    break
            else:
                raise AssertionError("the lead's export never came to rest")

    assert printed.returncode == 0, printed.stderr
    assert without_time(json.loads(printed.stdout)) == without_time(document)
    assert summed.returncode == 0, summed.stderr
    written = tmp_path / f"lead-{ada}-export.json"
    assert f"The whole document: {written.name}" in summed.stdout
    assert "records: outboxmessage" in summed.stdout and "crm_pushes" in summed.stdout
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # all of a person's data
    assert without_time(json.loads(written.read_text())) == without_time(document)

    assert document["schema_version"] == 1 and document["missing"] == []
    assert document["generated_at"].endswith("+00:00")
    assert list(document) == [
        "schema_version",
        "generated_at",
        "lead_id",
        "missing",
        "workflow",
        "profile",
        "score",
        "state",
        "crm_pushes",
        "records",
    ]
    records = document["records"]
    assert list(records) == sorted(records)
    assert document["workflow"]["status"] == "running"
    profile = document["profile"]
    assert (profile["email"], profile["last_name"], profile["phone"]) == (
        f"{ada}@mail.example",
        "Lovelace",
        "+44 20 7946 0000",
    )
    assert profile["address"] == "12 St James's Square, London"

    explained = {line["rule"]: line["points"] for line in document["score"]["explanation"]}
    assert explained["form_fill"] == 20 and explained["call_connected"] == 15
    assert (
        document["score"]["total"]
        == document["state"]["score"]["fit_points"] + document["state"]["score"]["behaviour_points"]
    )
    events = {row["type"] for row in records["leadevent"]}
    assert {"form_fill", "download", "page_view", "email_open", "call_connected"} <= events
    assert [row["at"] for row in records["leadevent"]] == sorted(
        r["at"] for r in records["leadevent"]
    )
    assert all(row["at"].endswith("+00:00") for row in records["leadevent"])
    assert any("form_fill" in row["detail"] for row in records["scorechange"])
    moves = [(row["from_stage"], row["to_stage"]) for row in records["stagetransition"]]
    assert ("nurturing", "assigned") in moves and ("assigned", "working") in moves
    (handoff,) = records["handoff"]
    assert (handoff["rep"], handoff["status"]) == ("dana", "accepted")
    assert [row["rep"] for row in records["salesassignment"]] == ["dana"]
    assert [row["rep_id"] for row in records["repassignment"]] == ["dana"]
    (call,) = [t for t in records["salestask"] if t["channel"] == "call"]
    assert (call["outcome"], call["closed_by"], call["phone"]) == (
        "connected",
        "alice",
        "+44 20 7946 0000",
    )
    assert any(row["status"] == "sent" for row in records["touch"])

    # The email as sent: the outbox's bodies are what the stand-in received.
    (sent,) = standin.messages_with(lead_id=ada, category="touch")
    (intro,) = [row for row in records["outboxmessage"] if row["category"] == "touch"]
    assert (intro["subject"], intro["to_email"], intro["status"]) == (
        "Intro",
        f"{ada}@mail.example",
        "sent",
    )
    assert intro["html_body"] == sent.contents["text/html"]
    assert intro["text_body"] == sent.contents["text/plain"]
    alerts = [row for row in records["outboxmessage"] if row["category"] == "handoff"]
    assert alerts and alerts[0]["html_body"]  # the rep's alert about this lead

    assert {row["event"] for row in records["webhookevent"]} >= {"open", "unsubscribe"}
    (suppressed,) = records["suppression"]
    salt = salt_of(db)
    assert (suppressed["email_hash"], suppressed["reason"]) == (
        address_digest(salt, f"{ada}@mail.example"),
        "unsubscribe",
    )  # the list keeps the address's digest only

    upserts = [p for p in document["crm_pushes"] if p["kind"] == "crm_lead"]
    assert upserts and all(p["status"] == "completed" for p in upserts)
    assert upserts[0]["fields"]["Email"] == f"{ada}@mail.example"
    assert upserts[0]["fields"]["Company"] == "Shared Health"
    assert {p["fields"]["Status"] for p in upserts} >= {
        "Open - Not Contacted",
        "Working - Contacted",
    }

    # Two leads of one company and one rep: each export holds its own person only.
    mine, theirs = json.dumps(document), json.dumps(other)
    assert bea not in mine and ada not in theirs
    assert "Lovelace" not in theirs and "Bea" not in mine
    assert "Shared Health" in mine and "Shared Health" in theirs
    assert "dana" in theirs and other["records"]["leadevent"]
    assert other["records"]["suppression"] == [] and other["records"]["salestask"] == []
