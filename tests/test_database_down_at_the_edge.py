"""The engine database (PostgreSQL) refuses connections: the HTTP service answers 503 with
``Retry-After`` (a page as a page), never a bare 500, and the commands exit 2 with one line
saying so, never a traceback. Temporary, as the API's contract says: send the same again later.
Found from outside: both broke this way while the database was away."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from nurture.privacy.master_keys import generate
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, postgres_database, wait_for_state
from tests.drills import set_database_up
from tests.web_api import running_api

ROOT = Path(__file__).parent.parent


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database("nurture_edge") as url:
        yield url


async def test_the_service_answers_503_while_its_database_is_away(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, pg_url: str
) -> None:
    lead = lead_id("edge")
    async with running_api(dev_env, standin, tmp_path, database_url=pg_url) as api:
        event = {"lead_id": lead, "type": "page_view", "url": "https://corp.example/pricing"}
        sent = await api.http.post("/api/events", json=[event], headers=api.auth("ingest"))
        assert sent.status_code == 200, sent.text
        handle = api.engine.client.get_workflow_handle(f"lead-{lead}")
        await wait_for_state(handle, lambda s: s.events_applied == 1)
        await asyncio.to_thread(set_database_up, pg_url, False)
        try:
            read = await api.http.get(f"/api/leads/{lead}", headers=api.auth("operator"))
            posted = await api.http.post("/api/events", json=[event], headers=api.auth("ingest"))
            page = await api.http.get(
                f"/api/leads/{lead}", headers={**api.auth("operator"), "Accept": "text/html"}
            )
        finally:
            await asyncio.to_thread(set_database_up, pg_url, True)
        for answer in (read, posted):
            assert answer.status_code == 503, answer.text
            assert answer.json() == {
                "detail": "the engine database is unavailable: send the same request again later"
            }
            assert answer.headers["Retry-After"] == "30"
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "Nurture cannot reach its database just now" in page.text
        # Back: the same request goes through.
        again = await api.http.get(f"/api/leads/{lead}", headers=api.auth("operator"))
        assert again.status_code == 200, again.text


async def _run(env: dict[str, str], cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_command_or_a_worker_exits_2_with_one_line_while_the_database_is_away(
    dev_env: WorkflowEnvironment, tmp_path: Path, pg_url: str
) -> None:
    events, leads = tmp_path / "events.jsonl", tmp_path / "leads.jsonl"
    events.write_text('{"lead_id": "ada", "type": "page_view"}\n')
    leads.write_text('{"lead_id": "bo", "email": "bo@corp.example"}\n')
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "NURTURE_DATABASE_URL": pg_url,
        "NURTURE_KEYS_DATABASE_URL": pg_url,  # a lead's payloads are encrypted with its key
        "NURTURE_MASTER_KEY": generate(),
        "NURTURE_CONFIG": str(ROOT / "config"),
        "NURTURE_TEMPLATES": str(ROOT / "templates"),
        "NURTURE_METRICS_PORT": "off",
    }
    starter, worker = str(ROOT / "starter.py"), str(ROOT / "worker.py")
    await asyncio.to_thread(set_database_up, pg_url, False)
    try:
        done = [
            await _run(env, tmp_path, starter, "event", str(events)),
            await _run(env, tmp_path, starter, "lead", "add", str(leads)),
            await _run(env, tmp_path, worker, "--task-queue", f"edge-{lead_id('q')}"),
        ]
    finally:
        await asyncio.to_thread(set_database_up, pg_url, True)
    for command in done:
        assert command.returncode == 2, command.stderr
        assert "the engine database did not answer" in command.stderr
        assert "not currently accepting connections" in command.stderr  # the driver's words
        assert "Traceback" not in command.stderr and "[SQL" not in command.stderr
