"""Signalling a lead that must already exist (a webhook or a link never creates a lead)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nurture.contract.names import EVENT_SIGNAL
from nurture.domain.leads import LeadEvent, workflow_id_for


async def signal_existing_lead(client: Client, event: LeadEvent) -> bool:
    """Deliver ``event`` to its lead; False when there is no running workflow for it.
    Any other failure (Temporal unreachable…) raises, so the caller can ask for a retry."""
    handle = client.get_workflow_handle(workflow_id_for(event.lead_id))
    try:
        await handle.signal(EVENT_SIGNAL, event)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
