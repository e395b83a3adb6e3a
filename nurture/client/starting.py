"""Getting profiles and events to their lead: signal-with-start, so the first event of a lead
that has no workflow yet starts it and is never lost."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDConflictPolicy

from nurture.client.lead_priority import put_ahead
from nurture.contract.messages import TASK_QUEUE, LeadInput
from nurture.contract.names import EVENT_SIGNAL, LEAD_WORKFLOW, PROFILE_SIGNAL
from nurture.core.urgency import SALES
from nurture.domain.leads import LeadEvent, LeadProfile, workflow_id_for

TASK_TIMEOUT = timedelta(seconds=30)
"""How long a worker may take over one of a lead's workflow tasks before Temporal gives it to
another worker (the server's default is 10 s, its limit 120 s; continue-as-new keeps it).

A calm task takes milliseconds. A worker that has taken more tasks than its interpreter runs at
once (up to its 100 slots, taking turns at the interpreter lock) finishes them late together:
with 10,000 new leads and 5,000 due touches on one worker, 8,156 tasks took over 5 s (p50 8 s,
longest 15 s). At 10 s the server timed 2,671 of them out, refused their completions and
scheduled them again, to be replayed from their histories on top of the work already done:
the backlog fed itself and the run never drained. At 30 s none timed out and it drained
(``bench/README.md``). The price is paid only when a worker dies in the middle of a task: that
lead waits up to this long before another worker runs it."""


async def send_profile(
    client: Client,
    profile: LeadProfile,
    task_queue: str = TASK_QUEUE,
    suppressed: str | None = None,
) -> WorkflowHandle:
    """``suppressed``: why the profile's address is on the suppression list, if it is; a lead
    this profile starts is then created suppressed (an existing lead learns it at its next
    send, which the list refuses)."""
    return await _signal_with_start(
        client, profile.lead_id, PROFILE_SIGNAL, profile, task_queue, suppressed
    )


async def send_event(
    client: Client, event: LeadEvent, task_queue: str = TASK_QUEUE, sales_ready: bool = False
) -> WorkflowHandle:
    """``sales_ready``: the event hands its lead to sales at once (its type is one the rules
    qualify instantly): the lead's workflow goes ahead of nurture work first, so the task that
    applies the event does not wait behind a storm of due touches (``lead_priority``)."""
    priority = Priority.default
    if sales_ready and not await put_ahead(client, event.lead_id):
        priority = Priority(priority_key=SALES)  # no workflow yet: it starts ahead
    return await _signal_with_start(
        client, event.lead_id, EVENT_SIGNAL, event, task_queue, priority=priority
    )


async def _signal_with_start(
    client: Client,
    lead_id: str,
    signal: str,
    payload: LeadEvent | LeadProfile,
    task_queue: str,
    suppressed: str | None = None,
    priority: Priority = Priority.default,
) -> WorkflowHandle:
    """``priority`` applies only when this starts the lead's workflow."""
    return await client.start_workflow(
        LEAD_WORKFLOW,
        LeadInput(lead_id=lead_id, suppressed=suppressed),
        id=workflow_id_for(lead_id),
        task_queue=task_queue,
        start_signal=signal,
        start_signal_args=[payload],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        priority=priority,
        task_timeout=TASK_TIMEOUT,
    )
