"""Which of a lead's activities go first when work waits on Temporal's queues: what sales is
waiting for (the rep's alert, an SLA escalation, picking the rep) before nurture touches.

Temporal hands out the tasks backlogged on a task queue by their priority key, 1 first and 5
last, 3 for a task given none (``temporalio.common.Priority``). In a storm of due touches (a
worker back after an outage; a cadence step that many leads reach at once) the rep's alert is
then the next activity a worker takes, not the one after every touch due before it.

Only activities carry a key: a workflow's own tasks all have the key it was started with, and
which of a lead's workflow tasks is urgent is known only once it has run."""

from __future__ import annotations

from nurture.contract.messages import AssignRequest, EmailCategory, EmailRequest, TaskRequest

SALES = 1
"""The rep's alert, an escalation or a reassignment email, picking the rep."""
NURTURE = 4
"""A cadence touch, and the call or direct-mail task a cadence step puts in the queue."""

URGENCY_OF_EMAIL: dict[EmailCategory, int | None] = {
    "touch": NURTURE,
    "handoff": SALES,
    "escalation": SALES,
    "reassigned": SALES,
    "activity": None,
}


def priority_key(request: object) -> int | None:
    """The priority key of the activity carrying ``request``; None for Temporal's default
    (the owner's digest of what the lead did, records, task closures, CRM writes)."""
    if isinstance(request, EmailRequest):
        return URGENCY_OF_EMAIL[request.category]
    if isinstance(request, AssignRequest):
        return SALES
    if isinstance(request, TaskRequest):
        return NURTURE
    return None
