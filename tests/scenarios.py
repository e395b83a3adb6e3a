"""A whole life of a lead, driven against a running engine: used to record the histories kept
under tests/histories/ (replayed in CI) and to replay a fresh one."""

from __future__ import annotations

import asyncio
import functools
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from temporalio.client import Client, WorkflowHandle

from nurture.client.sales import act
from nurture.client.starting import send_event
from nurture.contract.messages import (
    LeadState,
    OutcomeRequest,
    RejectRequest,
    RepAction,
    TaskCompletion,
)
from nurture.domain.leads import LeadEvent
from nurture.standins.crm_standin import SalesforceStandIn, to_18_char_id
from tests.conftest import TEST_RULES, Engine, wait_for_state, wait_until, wait_until_async
from tests.drills import drill_rules, read_model_writes, set_database_up

SCENARIO_TIME_SCALE = 14400.0  # 4h SLA -> 1s, 1h first touch -> 0.25s
OUTAGE_TIME_SCALE = 3600.0  # the outage's cadence: first touch 1 s after enrolment, second 6 s


async def full_life(engine: Engine, lead: str) -> WorkflowHandle:
    """Touch, handoff, SLA miss and reassignment, accept, reject and recycle, instant
    re-qualification, accept, won."""
    client = engine.client
    handle = await engine.profile(
        lead_id=lead,
        email=f"{lead}@corp.example",
        first_name="Rae",
        region="EMEA",
        title="Director",
        campaign="replay",
    )
    await wait_for_state(handle, lambda s: s.touches_sent == 1)
    for kind in ("form_fill", "download", "page_view"):
        await engine.event(
            lead, kind, url="https://corp.example/pricing" if kind == "page_view" else None
        )
    await wait_for_state(handle, lambda s: s.stage == "assigned")
    missed = await wait_for_state(handle, lambda s: bool(s.handoff and s.handoff.escalations))
    owner = missed.owner or ""
    await act(client, lead, "accept", RepAction(rep=owner))
    await act(client, lead, "reject", RejectRequest(rep=owner, reason="wrong timing"))
    await engine.event(lead, "email_open")
    await engine.event(lead, "requested_call")
    again = await wait_for_state(handle, lambda s: s.stage == "assigned" and s.handoffs == 2)
    await act(client, lead, "contact", RepAction(rep=again.owner or ""))
    await act(
        client, lead, "outcome", OutcomeRequest(rep=again.owner or "", result="won", amount=1000)
    )
    await wait_for_state(handle, lambda s: s.stage == "won")
    return handle


async def enter_multichannel(engine: Engine, lead: str) -> WorkflowHandle:
    """A lead for the test rules' multichannel cadence, with the phone and address its call
    and direct-mail tasks need."""
    return await engine.profile(
        lead_id=lead,
        email=f"{lead}@corp.example",
        first_name="Cy",
        phone="+1 555 0100",
        address="1 Main St, Springfield",
        custom={"track": "multichannel"},
    )


async def multichannel_life(engine: Engine, lead: str) -> WorkflowHandle:
    """Email (through the send-window/cap check), a call task done with an outcome that
    scores, another email, a direct-mail task done, the last email: the cadence parks."""
    handle = await enter_multichannel(engine, lead)
    for outcome in ("connected", "sent"):
        state = await wait_for_state(
            handle, lambda s: bool(s.tasks and s.tasks[-1].status == "open"), timeout=15
        )
        task = state.tasks[-1]
        await act(
            engine.client,
            lead,
            "complete_task",
            TaskCompletion(rep="alice", task_key=task.key, outcome=outcome),
        )
    await wait_for_state(handle, lambda s: s.cadence is not None and s.cadence.parked, timeout=15)
    return handle


def _applied(count: int, state: LeadState) -> bool:
    return state.events_applied == count


async def late_history(engine: Engine, lead: str) -> WorkflowHandle:
    """A website visitor's anonymous visits handed over on identification (issue 16): events
    with their own past times, weeks apart, each its own signal, after the lead was made: the
    lead decays up to each one, and refunds decay a later-told visit shows was not due."""
    handle = await engine.profile(lead_id=lead, email=f"{lead}@corp.example", first_name="Lu")
    now = datetime.now(UTC)
    # Decay periods are 14400x shorter here (14 d -> 84 s): the second visit comes 60 s
    # after the first: inside the period the decay charged once the first was told.
    ago = [timedelta(days=40), timedelta(days=40, seconds=-60), timedelta(days=12)]
    kinds = ["page_view", "download", "page_view"]
    for number, (before, kind) in enumerate(zip(ago, kinds, strict=True), start=1):
        await engine.event(
            lead,
            kind,
            at=now - before,
            url=f"https://corp.example/{kind}",
            props={"anonymous": True},
            event_id=f"{lead}-{number}",
        )
        # Each in its own workflow task: decay to now runs between them, and is refunded.
        await wait_for_state(handle, functools.partial(_applied, number))
    return handle


SCENARIOS = {
    "full-life": full_life,
    "multichannel": multichannel_life,
    "late-history": late_history,
}


def crm_user(number: int) -> str:
    user = to_18_char_id(f"005{number:012d}")
    assert user is not None
    return user


def crm_rules(tmp_path: Path) -> Path:
    """The fixture rules with the CRM push on and a CRM user id for every rep."""
    config = tmp_path / "crm-rules"
    shutil.copytree(TEST_RULES, config)
    routing = yaml.safe_load((config / "routing.yaml").read_text())
    routing["crm"] = {"enabled": True}
    for number, rep in enumerate(routing["reps"]):
        rep["crm_user_id"] = crm_user(number)
    (config / "routing.yaml").write_text(yaml.safe_dump(routing))
    return config


async def crm_life(engine: Engine, salesforce: SalesforceStandIn, lead: str) -> WorkflowHandle:
    """A touch, handoff pushed to the CRM, activity forwarded as a Task, accept, won."""
    handle = await engine.profile(
        lead_id=lead, email=f"{lead}@corp.example", first_name="Cy", last_name="Ng"
    )
    await wait_for_state(handle, lambda s: s.touches_sent == 1)
    state = await engine.request_call(lead)
    await engine.event(lead, "page_view", url="https://corp.example/pricing")
    await act(engine.client, lead, "accept", RepAction(rep=state.owner or ""))
    await act(engine.client, lead, "outcome", OutcomeRequest(rep=state.owner or "", result="won"))
    await wait_until(
        lambda: (salesforce.lead_by_external_id(lead) or {}).get("Status") == "Closed - Converted",
        what="the CRM seeing the lead won",
    )
    return handle


def outage_rules(tmp_path: Path) -> Path:
    """Two touches, the second due while the database is away."""
    return drill_rules(tmp_path, [("first", "1h"), ("second", "6h")])


async def database_outage(engine: Engine, lead: str, database_url: str) -> WorkflowHandle:
    """The engine database refuses connections while an event arrives and a touch comes due:
    the lead applies the event, its read-model write fails and is retried (in its workflow task,
    then on durable timers: the markers record the attempt and the backoff), the touch's send
    waits; once the database is back, the write goes through and the touch is sent once."""
    handle = await engine.profile(lead_id=lead, email=f"{lead}@corp.example", first_name="Di")
    await wait_for_state(handle, lambda s: s.touches_sent == 1)
    await asyncio.to_thread(set_database_up, database_url, False)
    try:
        await engine.event(lead, "page_view", url="https://corp.example/pricing")
        await wait_for_state(handle, lambda s: s.events_applied == 1)

        async def retried_on_a_timer() -> bool:
            writes = read_model_writes(await handle.fetch_history())
            return any(w["backoff"] for w in writes)

        await wait_until_async(retried_on_a_timer, what="the write retried on a timer", timeout=40)
    finally:
        await asyncio.to_thread(set_database_up, database_url, True)

    async def written() -> bool:
        writes = read_model_writes(await handle.fetch_history())
        return not writes[-1]["backoff"]

    await wait_until_async(written, what="the write going through", timeout=60)
    await wait_for_state(handle, lambda s: s.touches_sent == 2, timeout=60)
    return handle


BACKLOG_RUN_EVENTS = 20  # a run's events (engine.yaml): a backlog outlasts the first run


def backlog_rules(tmp_path: Path) -> Path:
    """The test rules with a run ending after ``BACKLOG_RUN_EVENTS`` events."""
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    engine = yaml.safe_load((config / "engine.yaml").read_text())
    engine["max_events_per_run"] = BACKLOG_RUN_EVENTS
    (config / "engine.yaml").write_text(yaml.safe_dump(engine))
    return config


async def send_backlog(
    client: Client, lead: str, task_queue: str, events: int, props_bytes: int
) -> WorkflowHandle:
    """``events`` page views with ``props_bytes`` of props each, sent while no worker takes
    ``task_queue`` (a worker restarting, a burst faster than the lead's tasks): the lead's first
    workflow task meets every one. The handle of the run they started."""
    start = datetime.now(UTC) - timedelta(days=1)  # recent: no inactivity decay
    gate = asyncio.Semaphore(32)
    first = await send_event(client, _backlog_event(lead, 0, start, props_bytes), task_queue)

    async def send(n: int) -> None:
        async with gate:
            await send_event(client, _backlog_event(lead, n, start, props_bytes), task_queue)

    await asyncio.gather(*(send(n) for n in range(1, events)))
    return client.get_workflow_handle(first.id, run_id=first.first_execution_run_id)


def _backlog_event(lead: str, n: int, start: datetime, props_bytes: int) -> LeadEvent:
    return LeadEvent(
        lead_id=lead,
        type="page_view",
        at=start + timedelta(seconds=n),
        event_id=f"{lead}-{n}",
        props={"note": "x" * props_bytes},
    )
