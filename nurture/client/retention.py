"""The retention schedule, kept in line with ``engine.yaml`` by every worker at start: a
Temporal Schedule (not cron: it survives any one machine, shows in the UI, and its runs are
workflows) that starts the retention sweep daily (``workflows/retention.py``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from nurture.contract.messages import TASK_QUEUE
from nurture.contract.retention import RETENTION_SCHEDULE, RETENTION_WORKFLOW, RetentionRequest
from nurture.domain.rules import EngineSettings

SWEEP_EVERY = timedelta(days=1)


def retention_schedule(cold_after: timedelta, task_queue: str = TASK_QUEUE) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RETENTION_WORKFLOW,
            RetentionRequest(cold_after=cold_after),
            id="retention-sweep",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def keep_retention_schedule(
    client: Client, settings: EngineSettings, task_queue: str = TASK_QUEUE
) -> Literal["created", "updated", "removed", "none"]:
    """Make the schedule match ``erase_cold_leads_after``: created or updated when it is set,
    removed when it is not. Safe when several workers start at once."""
    handle = client.get_schedule_handle(RETENTION_SCHEDULE)
    if settings.erase_cold_leads_after is None:
        try:
            await handle.delete()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return "none"
            raise
        return "removed"
    schedule = retention_schedule(settings.erase_cold_leads_after, task_queue)
    try:
        await client.create_schedule(RETENTION_SCHEDULE, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
        return "updated"
    return "created"
