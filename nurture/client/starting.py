"""Getting profiles and events to their lead: signal-with-start, so the first event of a lead
that has no workflow yet starts it and is never lost."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDConflictPolicy

from nurture.client.lead_priority import put_ahead
from nurture.contract.messages import TASK_QUEUE, LeadInput
from nurture.contract.names import EVENT_SIGNAL, LEAD_WORKFLOW, PROFILE_SIGNAL
from nurture.core.urgency import SALES
from nurture.domain.leads import LeadEvent, LeadProfile, workflow_id_for


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
    )
