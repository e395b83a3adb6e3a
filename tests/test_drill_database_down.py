"""Fault drill: the database (PostgreSQL) goes away for several seconds while leads run and
events keep arriving. Activities and read-model writes fail and are retried; once it is back,
every event has been applied exactly once, every touch and handoff alert sent exactly once
(the SendGrid stand-in counts them by idempotency key), the read model holds every row once
and agrees with the workflows, and no lead is left waiting on anything.

The outage starts while SendGrid holds its answer to the first touches: the provider has
accepted them, but the outbox cannot be marked ``sent``. Their retries must find them in
SendGrid's Email Activity, not send them again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import func, select
from sqlmodel import SQLModel
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from nurture.client.sales import read_state
from nurture.contract.messages import LeadState
from nurture.domain.leads import workflow_id_for
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import OutboxMessage, make_engine
from nurture.store.read_model import (
    HandoffRecord,
    LeadEventRecord,
    LeadRecord,
    TouchRecord,
    table_of,
)
from tests.conftest import (
    lead_id,
    postgres_database,
    running_engine,
    wait_until,
)
from tests.drills import drill_rules, read_model_writes, retries_in_task, set_database_up
from workflows.lead import LeadWorkflow

TIME_SCALE = 3600.0  # the drill cadence's hours are seconds
OUTAGE = 7.0  # seconds without the database
HELD_202 = 3.0  # SendGrid's answer to the first touches comes after the outage began
EARLY, LATE = 12, 6  # leads before the outage (even ones ask for a call), leads during it
EMEA_REPS = {"alice": "alice@test.example", "bob": "bob@test.example"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of the drill's own, dropped afterwards."""
    with postgres_database("nurture_drill") as url:
        yield url


async def end_all(client: Client, leads: list[str]) -> None:
    await asyncio.gather(
        *(client.get_workflow_handle(workflow_id_for(i)).terminate("drill over") for i in leads),
        return_exceptions=True,  # a lead the drill never got to start
    )


async def pending_activities(client: Client, leads: list[str]) -> list[PendingActivityInfo]:
    descriptions = await asyncio.gather(
        *(client.get_workflow_handle(workflow_id_for(lead)).describe() for lead in leads)
    )
    return [a for d in descriptions for a in d.raw_description.pending_activities]


def per_lead(db: SqlEngine, model: type[SQLModel], *where: Any) -> Counter[str]:
    table = table_of(model)
    query = select(table.c.lead_id, func.count()).where(*where).group_by(table.c.lead_id)
    with db.connect() as conn:
        return Counter({lead: n for lead, n in conn.execute(query).all()})


def read_model_agrees(db: SqlEngine, states: list[LeadState]) -> bool:
    """The read model has every lead, event, handoff and sent touch the workflows report."""
    with db.connect() as conn:
        rows = conn.execute(select(table_of(LeadRecord))).mappings().all()
    leads = {row["lead_id"]: row for row in rows}
    touches = table_of(TouchRecord)
    return (
        len(leads) == len(states)
        and all(
            (lead := leads.get(s.lead_id)) is not None
            and (lead["stage"], lead["events"], lead["touches_sent"], lead["handoffs"])
            == (s.stage, s.events_applied, s.touches_sent, s.handoffs)
            for s in states
        )
        and per_lead(db, LeadEventRecord) == {s.lead_id: s.events_applied for s in states}
        and per_lead(db, HandoffRecord) == {s.lead_id: s.handoffs for s in states if s.handoffs}
        and per_lead(db, TouchRecord, touches.c.status == "sent")
        == {s.lead_id: s.touches_sent for s in states}
    )


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_database_down_for_seconds_loses_nothing_and_sends_nothing_twice(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, pg_url: str
) -> None:
    config = drill_rules(tmp_path, [("first", "1h"), ("second", "6h")])
    early = [lead_id(f"db{i:02d}") for i in range(EARLY)]
    callers = set(early[::2])
    late = [lead_id(f"late{i:02d}") for i in range(LATE)]
    leads = early + late
    client = dev_env.client
    loop = asyncio.get_running_loop()
    async with running_engine(
        client, standin, tmp_path, config_dir=config, time_scale=TIME_SCALE, database_url=pg_url
    ) as engine:
        try:
            started = loop.time()
            standin.delay_after_accept(HELD_202, count=EARLY)
            for lead in early:
                await engine.profile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA")
            # SendGrid took the first touches and is still holding its answers: cut now.
            await wait_until(
                lambda: len(standin.messages) == EARLY, what="the first touches reaching SendGrid"
            )
            await asyncio.to_thread(set_database_up, pg_url, False)
            outage_began, cut_at = loop.time(), datetime.now(UTC)
            try:
                # Events keep arriving: behaviour, a client's retried delivery, call requests,
                # and new leads.
                for lead in early:
                    await engine.event(lead, "page_view", url="https://corp.example/a")
                    await engine.event(lead, "download", event_id=f"{lead}-dl")
                    await engine.event(lead, "download", event_id=f"{lead}-dl")  # the same one
                    if lead in callers:
                        await engine.event(lead, "requested_call", event_id=f"{lead}-call")
                for lead in late:
                    await engine.profile(lead_id=lead, email=f"{lead}@corp.example")
                    await engine.event(lead, "page_view", url="https://corp.example/b")
                # The outage bites: activities fail and are retried.
                retried: list[PendingActivityInfo] = []
                while loop.time() - outage_began < OUTAGE:
                    pending = await pending_activities(client, leads)
                    retried += [a for a in pending if a.attempt >= 2]
                    await asyncio.sleep(0.5)
                sent_while_down = len(standin.messages)
            finally:
                await asyncio.to_thread(set_database_up, pg_url, True)
            outage = loop.time() - outage_began

            def expected(state: LeadState) -> bool:
                if state.lead_id in callers:
                    return state.stage == "assigned"
                return state.cadence is not None and state.cadence.parked

            db = make_engine(pg_url)
            deadline = loop.time() + 60
            while True:
                states = list(await asyncio.gather(*(read_state(client, i) for i in leads)))
                if (
                    all(expected(s) for s in states)
                    and not await pending_activities(client, leads)
                    and read_model_agrees(db, states)
                ):
                    break
                if loop.time() > deadline:
                    stuck = [s.lead_id for s in states if not expected(s)]
                    raise AssertionError(
                        f"not settled 60 s after the outage: stages "
                        f"{Counter(s.stage for s in states)}, not where expected: {stuck}, "
                        f"pending: {await pending_activities(client, leads)}"
                    )
                await asyncio.sleep(0.25)
            settled_after = loop.time() - started
            histories = await asyncio.gather(
                *(client.get_workflow_handle(workflow_id_for(i)).fetch_history() for i in leads)
            )
            writes = [read_model_writes(history) for history in histories]
            with db.connect() as conn:
                outbox = conn.execute(select(table_of(OutboxMessage))).mappings().all()
        finally:
            await end_all(client, leads)

    # --- the outage really happened to the engine -------------------------------------------
    print(f"\ndrill: outage {outage:.1f} s, settled {settled_after:.1f} s after the start")
    assert outage >= OUTAGE
    assert retried, "no activity was retried while the database was down"
    # The touches whose outbox could not be marked sent, and those that could not start.
    assert "send_email" in {a.activity_type.name for a in retried}
    assert sent_while_down == EARLY, "a touch went out while its outbox row could not be written"
    # A failed read-model write gave its workflow task back after one retry, and was retried on
    # timers: the lead's queries and next command waited about a second, not for the outage.
    assert any(w["backoff"] for lead in writes for w in lead), "no write retried on a timer"
    assert max(retries_in_task(lead) for lead in writes) == 1
    # And the retries' markers and timers replay (a worker restarting mid-outage).
    replayer = Replayer(workflows=[LeadWorkflow], data_converter=client.data_converter)
    for history in histories:
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, f"{history.workflow_id}: {replayed.replay_failure}"

    # --- every email exactly once, every event exactly once, every lead where it should be ---
    sent = Counter(m.custom_args["nurture_key"] for m in standin.messages)
    twice = {key: n for key, n in sent.items() if n > 1}
    assert not twice, f"sent more than once (key: times): {twice}"
    by_lead: dict[str, Counter[str]] = {lead: Counter() for lead in leads}
    for message in standin.messages:
        by_lead[message.custom_args["lead_id"]][message.custom_args["category"]] += 1
    for state in states:
        lead = state.lead_id
        assert state.last_error is None, f"{lead}: {state.last_error}"
        if lead in callers:
            assert (state.stage, state.handoffs, state.touches_sent) == ("assigned", 1, 1), lead
            assert (state.events_applied, state.duplicates_ignored) == (3, 1), lead
            assert by_lead[lead] == {"touch": 1, "handoff": 1}, lead
            (alert,) = standin.messages_with(lead_id=lead, category="handoff")
            assert state.owner in EMEA_REPS and alert.to == [EMEA_REPS[state.owner]]
        else:
            assert (state.stage, state.handoffs, state.touches_sent) == ("nurturing", 0, 2), lead
            events = (2, 1) if lead in early else (1, 0)
            assert (state.events_applied, state.duplicates_ignored) == events, lead
            assert by_lead[lead] == {"touch": 2}, lead
    assert len(standin.messages) == 2 * len(leads)  # two touches, or a touch and an alert
    assert {row["key"] for row in outbox} == set(sent)
    assert all(row["status"] == "sent" for row in outbox)
    # The held first touches: accepted once before the cut, marked sent only after it (found
    # in SendGrid's Email Activity by the retries, not sent again).
    first = [row for row in outbox if row["key"].endswith(":first") and row["lead_id"] in early]
    assert len(first) == EARLY
    assert all(row["attempts"] == 1 and row["sent_at"] > cut_at for row in first), first
    assert read_model_agrees(db, states)
