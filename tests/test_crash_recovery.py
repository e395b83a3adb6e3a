"""A worker killed after SendGrid accepted a touch but before it was recorded: after a restart
the touch is not sent again (real worker processes, SIGKILL, dev server)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, create_engine, select
from temporalio.testing import WorkflowEnvironment

from nurture.client.starting import send_profile
from nurture.domain.leads import LeadProfile
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import OutboxMessage
from tests.conftest import TEST_RULES, TEST_TEMPLATES, lead_id, wait_for_state

ROOT = Path(__file__).resolve().parent.parent


def start_worker(
    env: WorkflowEnvironment | str,
    config: Path,
    task_queue: str,
    db_url: str,
    standin: SendGridStandIn,
    log: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``worker.py`` as its own process, on the dev server ``env`` (or at that address);
    ``extra_env`` adds to (or overrides) its environment."""
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": env
        if isinstance(env, str)
        else env.client.service_client.config.target_host,
        "NURTURE_DATABASE_URL": db_url,
        "SENDGRID_API_KEY": "SG.crash-test-key",
        "SENDGRID_BASE_URL": standin.url,
        # With an API key the worker is configured as for real recipients:
        "NURTURE_SECRET_KEY": "crash-test-secret-0123456789",
        "NURTURE_PUBLIC_URL": "https://nurture.example",
        "NURTURE_LOG_FORMAT": "json",
        "NURTURE_METRICS_PORT": "off",  # workers of parallel tests would share 9464
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "worker.py"),
            "--config",
            str(config),
            "--templates",
            str(TEST_TEMPLATES),
            "--task-queue",
            task_queue,
            "--time-scale",
            "3600",
        ],
        cwd=ROOT,
        env=environment,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_worker_killed_between_send_and_record_does_not_send_twice(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    (config / "engine.yaml").write_text("activity_timeout: 2s\nmax_events_per_run: 400\n")
    db_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    task_queue = f"crash-{lead_id('q')}"
    log = tmp_path / "worker.log"
    lead = lead_id("crash")
    standin.delay_after_accept(60)  # SendGrid accepts the first touch, the answer never comes

    first = start_worker(dev_env, config, task_queue, db_url, standin, log)
    try:
        await send_profile(
            dev_env.client, LeadProfile(lead_id=lead, email="c@corp.example"), task_queue=task_queue
        )
        accepted = await asyncio.to_thread(standin.wait_for_messages, 1, 30.0)
        assert accepted, log.read_text()[-2000:]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    with Session(create_engine(db_url)) as session:
        rows = session.exec(select(OutboxMessage)).all()
    assert [(r.category, r.status) for r in rows] == [("touch", "pending")]

    second = start_worker(dev_env, config, task_queue, db_url, standin, log)
    try:
        handle = dev_env.client.get_workflow_handle(f"lead-{lead}")
        state = await wait_for_state(handle, lambda s: s.touches_sent == 1, timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)

    key = rows[0].key
    assert len(standin.messages_with(nurture_key=key)) == 1
    with Session(create_engine(db_url)) as session:
        row = session.get(OutboxMessage, key)
    assert row is not None and row.status == "sent" and row.attempts == 1
    assert state.last_error is None
    assert "SG.crash-test-key" not in log.read_text()  # no secret in any log line
    assert '"lead_id": "' + lead + '"' in log.read_text()  # structured, with the lead id
