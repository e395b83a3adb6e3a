"""A new lead publishes its stage in its first workflow task: under load each workflow task
waits its turn behind every lead's due timers, so a lead that needed a second task to show its
stage would stay without one in the Temporal UI and the rep inbox for minutes (issue 18, seen
with 2,000 simulated leads). The rules are a local activity and the patch markers are
commands: both belong to that same task."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from nurture.contract.names import STAGE
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, running_engine


async def published_stage(handle: WorkflowHandle) -> str:
    for _ in range(100):
        described = await handle.describe()
        if stage := described.typed_search_attributes.get(STAGE):
            return stage
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} published no stage in 10 s")


def first_task_commands(history: WorkflowHistory) -> list[HistoryEvent]:
    """The events the first workflow task's completion recorded (its commands), in order."""
    events = list(history.events)
    kinds = [e.event_type for e in events]
    completed = kinds.index(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    after = kinds[completed + 1 :]
    end = len(kinds)
    if EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED in after:
        end = completed + 1 + after.index(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
    return events[completed + 1 : end]


def stages_upserted(commands: list[HistoryEvent]) -> list[str]:
    """The stage values (JSON, as Temporal keeps them) that these commands upserted."""
    fields = [
        c.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for c in commands
        if c.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    return [f[STAGE.name].data.decode() for f in fields if STAGE.name in f]


@pytest.mark.parametrize("arrives_as", ["profile", "event"])
async def test_a_new_lead_publishes_its_stage_in_its_first_workflow_task(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    arrives_as: str,
) -> None:
    lead = lead_id()
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        if arrives_as == "profile":
            handle = await engine.profile(lead_id=lead, email="ada@corp.example")
        else:
            handle = await engine.event(lead, "page_view", url="https://corp.example/pricing")
        stage = await published_stage(handle)
        history = await handle.fetch_history()

    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in [e.event_type for e in history.events]
    assert stages_upserted(first_task_commands(history)) == [f'"{stage}"']
