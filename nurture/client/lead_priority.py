"""A lead's own place in Temporal's queues: ahead of nurture work while sales waits on it.

Activity keys (``nurture.core.urgency``) put the rep's alert ahead of touches, but every one
of a lead's *workflow* tasks (the one that applies the qualifying event, the ones between its
activities) carries the priority the workflow has, and in a timer storm those wait first in,
first out behind every other lead's due timer. So when an event hands a lead to sales at once
(a call request: the rules' ``instant_qualify`` types), the edge raises the lead's workflow to
:data:`~nurture.core.urgency.SALES` before sending it; when the rep's verdict takes it back
(rejected: recycled to nurturing; won or lost) the lead goes back to the default.

Temporal records each change in the lead's history (``WorkflowExecutionOptionsUpdated``) and
shows it in the UI; the workflow's code never sees it, so it is not a change a replay
matches. A change that fails is logged and the event or action goes on: priority is how soon,
never whether.
"""

from __future__ import annotations

import structlog
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import Priority, WorkflowExecution
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionOptionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nurture.core.urgency import SALES
from nurture.domain.leads import workflow_id_for

log = structlog.get_logger(__name__)


async def put_ahead(client: Client, lead_id: str) -> bool:
    """The lead's workflow tasks go ahead of nurture work from now on; False when the lead
    has no workflow yet (start it with :data:`SALES` priority instead) or Temporal refused."""
    return await _set(client, lead_id, SALES)


async def put_back(client: Client, lead_id: str) -> bool:
    """The lead's workflow tasks queue with everyone's again (Temporal's default); a lead that
    was never put ahead is left as it is (no change recorded in its history)."""
    try:
        described = await client.get_workflow_handle(workflow_id_for(lead_id)).describe()
    except RPCError:
        return False
    if not described.raw_description.workflow_execution_info.priority.priority_key:
        return False
    return await _set(client, lead_id, None)


async def _set(client: Client, lead_id: str, key: int | None) -> bool:
    workflow_id = workflow_id_for(lead_id)
    request = UpdateWorkflowExecutionOptionsRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        workflow_execution_options=WorkflowExecutionOptions(
            priority=Priority(priority_key=key or 0)
        ),
        update_mask=FieldMask(paths=["priority"]),
    )
    try:
        await client.workflow_service.update_workflow_execution_options(request)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            log.warning(
                "lead priority not changed",
                workflow_id=workflow_id,
                priority_key=key,
                status=err.status.name,
            )
        return False
    return True
