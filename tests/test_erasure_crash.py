"""An erasure killed half-way finishes after a restart: the worker running it is killed
(SIGKILL) after the lead's workflow was terminated, while the CRM is down and the deletion
there is being retried; a new worker finishes every step (real worker processes, dev server)."""

from __future__ import annotations

import asyncio
import shutil
import signal
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, create_engine, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from nurture.client.starting import send_profile
from nurture.domain.leads import LeadProfile, workflow_id_for
from nurture.privacy.erasure import erasures_of, forget
from nurture.standins.crm_standin import SalesforceStandIn
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.read_model import LeadRecord
from nurture.store.suppression import why_suppressed
from tests.conftest import TEST_RULES, lead_id, wait_for_state
from tests.test_crash_recovery import start_worker


async def test_an_erasure_killed_half_way_finishes_after_a_restart(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    salesforce: SalesforceStandIn,
    tmp_path: Path,
) -> None:
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    db_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    db = make_engine(db_url)
    task_queue = f"erase-{lead_id('q')}"
    log = tmp_path / "worker.log"
    crm = {
        "NURTURE_CRM_URL": salesforce.url,
        "NURTURE_CRM_CLIENT_ID": "nurture",
        "NURTURE_CRM_CLIENT_SECRET": "s3cret",
    }
    lead, email = lead_id("drill"), "dora.drill@drillworks.example"
    client = dev_env.client
    lead_handle = client.get_workflow_handle(workflow_id_for(lead))

    first = start_worker(dev_env, config, task_queue, db_url, standin, log, crm)
    try:
        profile = LeadProfile(lead_id=lead, email=email, first_name="Dora")
        await send_profile(client, profile, task_queue=task_queue)
        await wait_for_state(lead_handle, lambda s: s.touches_sent == 1, timeout=60)
        salesforce.down()  # the CRM step fails and is retried: the erasure stops there
        erasure = await forget(
            client,
            db,
            lead,
            "test",
            task_queue=task_queue,
            wait=timedelta(seconds=0.2),
            # Short, so the killed worker's step is retried soon; long enough for the key
            # shredding step, which waits ~2 s for every process to let go of the key.
            step_timeout=timedelta(seconds=5),
        )
        assert not erasure.done

        async def terminated() -> bool:
            described = await lead_handle.describe()
            return described.status == WorkflowExecutionStatus.TERMINATED

        for _ in range(200):
            if await terminated():
                break
            await asyncio.sleep(0.1)
        assert await terminated(), log.read_text()[-2000:]
        await asyncio.sleep(0.5)  # the CRM step under way
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert not (await erasures_of(client, db, lead))[0].done  # killed half-way
    salesforce.up()

    second = start_worker(dev_env, config, task_queue, db_url, standin, log, crm)
    try:
        found: list[object] = []

        async def finished() -> bool:
            found[:] = await erasures_of(client, db, lead)
            return bool(found) and found[0].done  # type: ignore[attr-defined]

        for _ in range(300):
            if await finished():
                break
            await asyncio.sleep(0.1)
        assert await finished(), log.read_text()[-3000:]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)

    receipt = found[0].receipt  # type: ignore[attr-defined]
    assert receipt.erased["addresses"] == 1 and receipt.erased["workflow_terminated"] == 1
    assert receipt.erased["rows_lead"] == 1
    with Session(create_engine(db_url)) as session:
        assert session.get(LeadRecord, lead) is None
        assert session.exec(select(LeadRecord.email).where(LeadRecord.email == email)).all() == []
    assert why_suppressed(db, email) == "erased (erasure)"
