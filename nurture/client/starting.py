"""Getting profiles and events to their lead: signal-with-start, so the first event of a lead
that has no workflow yet starts it and is never lost."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from nurture.contract.messages import TASK_QUEUE, LeadInput
from nurture.contract.names import EVENT_SIGNAL, LEAD_WORKFLOW, PROFILE_SIGNAL
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
    client: Client, event: LeadEvent, task_queue: str = TASK_QUEUE
) -> WorkflowHandle:
    return await _signal_with_start(client, event.lead_id, EVENT_SIGNAL, event, task_queue)


async def _signal_with_start(
    client: Client,
    lead_id: str,
    signal: str,
    payload: LeadEvent | LeadProfile,
    task_queue: str,
    suppressed: str | None = None,
) -> WorkflowHandle:
    return await client.start_workflow(
        LEAD_WORKFLOW,
        LeadInput(lead_id=lead_id, suppressed=suppressed),
        id=workflow_id_for(lead_id),
        task_queue=task_queue,
        start_signal=signal,
        start_signal_args=[payload],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
