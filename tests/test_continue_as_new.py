"""Thousands of events to one lead, or a burst of large ones, cross continue-as-new with nothing
lost (dev server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col
from temporalio.api.history.v1 import (
    WorkflowExecutionContinuedAsNewEventAttributes as ContinuedAsNew,
)
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from nurture.client.starting import TASK_TIMEOUT, send_event
from nurture.domain.leads import LeadEvent
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.read_model import LeadEventRecord, LeadRecord
from tests.conftest import lead_id, running_engine, wait_for_state, wait_until
from tests.scenarios import send_backlog


def _read_model_events(db: Engine, lead: str) -> tuple[int, int | None]:
    """(event rows, the lead row's event count) in the read model."""
    with db.connect() as conn:
        rows = conn.execute(
            select(func.count()).where(col(LeadEventRecord.lead_id) == lead)
        ).scalar_one()
        counted = conn.execute(
            select(col(LeadRecord.events)).where(col(LeadRecord.lead_id) == lead)
        ).scalar_one_or_none()
    return rows, counted


EVENTS = 3000
RESENT = 150  # a client retrying part of its batch: must count once


async def test_thousands_of_events_cross_continue_as_new_with_an_exact_score(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id("busy")
    start = datetime.now(UTC) - timedelta(days=3)  # recent: no inactivity decay
    kinds = ["email_open", "page_view", "email_click", "download"]
    points = {"email_open": 1, "page_view": 1, "email_click": 5, "download": 10}
    events = [
        LeadEvent(
            lead_id=lead, type=kinds[n % 4], at=start + timedelta(minutes=n), event_id=f"{lead}-{n}"
        )
        for n in range(EVENTS)
    ]
    expected_behaviour = sum(points[e.type] for e in events)
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        await engine.profile(lead_id=lead, email="busy@corp.example", region="EMEA")
        gate = asyncio.Semaphore(64)

        async def send(event: LeadEvent) -> None:
            async with gate:
                await send_event(dev_env.client, event, task_queue=engine.task_queue)

        await asyncio.gather(*(send(e) for e in events + events[:RESENT]))
        handle = dev_env.client.get_workflow_handle(f"lead-{lead}")
        state = await wait_for_state(
            handle,
            lambda s: s.events_applied + s.duplicates_ignored >= EVENTS + RESENT,
            timeout=120,
        )
        described = (await handle.describe()).raw_description
        history_length = described.workflow_execution_info.history_length
        task_timeout = described.execution_config.default_workflow_task_timeout.ToTimedelta()
        # The read model gets every applied event once, across every run.
        db = make_engine(engine.database_url)
        await wait_until(
            lambda: _read_model_events(db, lead) == (EVENTS, EVENTS),
            what="the read model holding every event once",
            timeout=60,
        )

    assert state.events_applied == EVENTS
    assert state.duplicates_ignored == RESENT
    assert state.score.behaviour_points == expected_behaviour
    assert sum(t.points for t in state.score.tallies.values()) == expected_behaviour
    assert state.score.tallies["download"].count == EVENTS // 4
    # engine.yaml: max_events_per_run 400. A run that met more events than it may carry on
    # (CARRIED_BYTES_MAX, ~630 of these) applies the rest first: all 3,150 in the first
    # run's queue still take three runs.
    assert state.runs >= 3
    assert history_length < 4000  # the current run's history stays bounded
    assert task_timeout == TASK_TIMEOUT  # what the lead was started with, in its latest run
    assert state.stage == "assigned" and state.owner == "alice"  # handed off on the way


BURST = 600
BURST_PROPS = 15_000  # the edge takes 16 KiB of props an event


async def test_a_burst_of_large_events_met_at_once_is_applied_and_the_lead_goes_on(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """600 events of 15 KB sent while no worker ran: the server suggests continuing as new
    before the lead has applied any (its history is 9 MB). Carried whole, the next run's input
    was 9.1 MB, over Temporal's 2 MB: refused on every attempt, the lead was stuck for good.
    It applies them until what it carries fits, and every run's input stays small."""
    lead, queue = lead_id("burst"), f"burst-{uuid.uuid4().hex[:8]}"
    first_run = await send_backlog(dev_env.client, lead, queue, BURST, BURST_PROPS)
    async with running_engine(dev_env.client, standin, tmp_path, task_queue=queue):
        latest = dev_env.client.get_workflow_handle(first_run.id)
        state = await wait_for_state(latest, lambda s: s.events_applied == BURST, timeout=60)
        inputs = [
            sum(len(p.data) for p in event.input.payloads)
            async for event in _continued_as_new(dev_env, first_run.id)
        ]
    assert state.events_applied == BURST and state.last_error is None
    assert state.runs >= 2 and len(inputs) == state.runs - 1
    assert max(inputs) < 512 * 1024  # Temporal's warning limit; it refuses past 2 MB


async def _continued_as_new(
    env: WorkflowEnvironment, workflow_id: str
) -> AsyncIterator[ContinuedAsNew]:
    """Each closed run's continue-as-new event (its input is the next run's)."""
    async for run in env.client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        if run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            history = await env.client.get_workflow_handle(
                workflow_id, run_id=run.run_id
            ).fetch_history()
            yield history.events[-1].workflow_execution_continued_as_new_event_attributes
