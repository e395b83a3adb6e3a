"""Starting the counting workflow (``bench/counting_workflow.py``) as the baseline's starter
does: signal-with-start with the lead's first event, a bounded number at a time."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from bench.counting_workflow import CountingWorkflow
from nurture.domain.leads import LeadEvent

COUNTING_QUEUE = "bench-counting"


async def start_counting(client: Client, count: int, in_flight: int) -> None:
    gate = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with gate:
            lead = f"count-{n:06d}"
            await client.start_workflow(
                CountingWorkflow.run,
                lead,
                id=f"count-{lead}",
                task_queue=COUNTING_QUEUE,
                start_signal="event",
                start_signal_args=[LeadEvent(lead_id=lead, type="page_view")],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )

    await asyncio.gather(*(one(n) for n in range(count)))


async def await_first_tasks(client: Client, count: int, in_flight: int) -> None:
    """Until each of the ``count`` counting workflows ran its first workflow task (its query
    answers with the event it was started with)."""
    gate = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        handle = client.get_workflow_handle(f"count-count-{n:06d}")
        async with gate:
            while await handle.query(CountingWorkflow.count) < 1:
                await asyncio.sleep(0.2)

    await asyncio.gather(*(one(n) for n in range(count)))
