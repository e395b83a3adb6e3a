"""``nurture simulate`` reads a population's states from a busy engine: a lead the engine does
not answer for (its workflow task held by a killed worker, every poller busy) is counted as
unread after a bounded wait; it neither ends the simulation nor hides the others."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs
from temporalio.testing import WorkflowEnvironment

from nurture.cli.simulate import Patience, read_states, settle
from nurture.client.starting import send_profile
from nurture.domain.leads import LeadProfile
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, lead_state, running_engine, wait_for_state

SHORT = Patience(attempts=2, timeout=timedelta(seconds=1))


async def test_a_lead_no_worker_runs_is_counted_unread_and_the_rest_are_read(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        readable = [lead_id("read") for _ in range(3)]
        for lead in readable:
            handle = await engine.profile(lead_id=lead, email=f"{lead}@corp.example")
            await wait_for_state(handle, lambda s: s.profile.email is not None)
        stuck = lead_id("stuck")  # its first workflow task waits on a queue no worker polls
        await send_profile(
            dev_env.client,
            LeadProfile(lead_id=stuck, email=f"{stuck}@corp.example"),
            task_queue=f"{engine.task_queue}-nobody",
        )
        started = asyncio.get_running_loop().time()
        with capture_logs() as logs:
            reading = await read_states(dev_env.client, [readable[0], stuck, *readable[1:]], SHORT)
        waited = asyncio.get_running_loop().time() - started

        assert reading.unread == [stuck]
        assert sorted(s.lead_id for s in reading.states) == sorted(readable)
        # two one-second queries and one pause: bounded, not the server's 30 s per query
        assert waited < 10, waited
        # the log says which lead was given up on and what Temporal last said about it
        given_up = [e for e in logs if e["event"] == "lead not read"]
        assert [(e["lead_id"], e["attempts"]) for e in given_up] == [(stuck, 2)]
        assert given_up[0]["error"].startswith(f"lead {stuck}: Temporal said "), given_up

        # settling waits for the unread lead as for one still applying its events, until
        # the deadline: the others were settled long before
        settled_at = asyncio.get_running_loop().time()
        await settle(dev_env.client, {stuck: 0, readable[0]: 0}, seconds=3, patience=SHORT)
        assert 3 <= asyncio.get_running_loop().time() - settled_at < 15
        assert (await lead_state(handle)).profile.email is not None
