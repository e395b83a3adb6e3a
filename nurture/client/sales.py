"""Rep actions from outside (CLI now, HTTP later): Temporal updates with clear errors."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.api.errordetails.v1 import QueryFailedFailure
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from nurture.client.lead_priority import put_back
from nurture.contract.messages import (
    ActionResult,
    LeadState,
    OutcomeRequest,
    RejectRequest,
    RepAction,
    TaskCompletion,
)
from nurture.contract.names import (
    AHEAD_OF_WORKFLOW_TASK,
    AHEAD_OF_WORKFLOW_TASK_ERROR,
    LEAD_ERASED,
    STATE_QUERY,
    RepUpdate,
)
from nurture.domain.leads import workflow_id_for


class LeadActionError(Exception):
    """The action was refused; the message says why and nothing about the lead changed."""


class UnknownLeadError(LeadActionError):
    pass


class TemporalUnavailableError(LeadActionError):
    """Temporal did not answer (down, overloaded, timed out): nothing was decided; try again."""


async def act(client: Client, lead_id: str, action: RepUpdate, request: RepAction) -> ActionResult:
    if action == "reject" and not isinstance(request, RejectRequest):
        raise LeadActionError("reject needs a reason")
    if action == "outcome" and not isinstance(request, OutcomeRequest):
        raise LeadActionError("outcome needs won or lost")
    if action == "complete_task" and not isinstance(request, TaskCompletion):
        raise LeadActionError("complete_task needs the task and its outcome")
    result = await update_lead(client, lead_id, action, request)
    if action in LEAVES_SALES:
        await put_back(client, lead_id)
    return result


LEAVES_SALES: frozenset[RepUpdate] = frozenset({"reject", "outcome"})
"""The rep's verdicts after which sales no longer waits on the lead (recycled to nurturing, or
won or lost): a lead a call request put ahead in Temporal's queues queues with everyone's."""


async def update_lead(
    client: Client, lead_id: str, update: str, request: BaseModel, update_id: str | None = None
) -> ActionResult:
    """Send the lead's ``update`` (a rep's action, the person's preferences): applied whole,
    or refused (:class:`LeadActionError` saying why). ``update_id`` makes a retry of the same
    request one update."""
    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    try:
        return await handle.execute_update(update, request, id=update_id, result_type=ActionResult)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        raise LeadActionError(f"{update} refused for lead {lead_id}: {message}") from err
    except RPCError as err:
        raise _lead_rpc_error(lead_id, err) from err


QUERY_ATTEMPTS = 5


async def read_state(client: Client, lead_id: str, timeout: timedelta | None = None) -> LeadState:
    """The lead's state; :class:`UnknownLeadError` for no such lead, or an erased one (it
    refuses the query while a worker still holds it, and its history cannot be decrypted
    once it is evicted); :class:`TemporalUnavailableError` when Temporal did not answer
    (within ``timeout`` if given: the server's own limit is 30 s)."""
    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    try:
        return await query_state(handle, timeout)
    except RPCError as err:
        raise _lead_rpc_error(lead_id, err) from err
    except WorkflowQueryFailedError as err:
        erased = query_failure_type(err) == LEAD_ERASED
        if erased or (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            raise UnknownLeadError(
                f"no lead {lead_id!r}: it was erased"
                if erased
                else f"lead {lead_id!r}: its workflow is closed and its state cannot be read "
                "(an erased lead's history can never be read again)"
            ) from err
        raise


async def query_state(
    handle: WorkflowHandle[Any, Any], timeout: timedelta | None = None
) -> LeadState:
    """The lead's state query, asked again when the lead refused to answer it because the
    query brought history events ahead of their workflow task (a query racing a timer, a
    signal or an activity result while no worker was polling: after a restart, or with every
    poller busy). Nothing was decided then; asked again, the query waits for that task."""
    attempt = 1
    while True:
        try:
            return await handle.query(STATE_QUERY, result_type=LeadState, rpc_timeout=timeout)
        except WorkflowQueryFailedError as err:
            ahead = AHEAD_OF_WORKFLOW_TASK in err.message or (
                query_failure_type(err) == AHEAD_OF_WORKFLOW_TASK_ERROR
            )
            if not ahead or attempt == QUERY_ATTEMPTS:
                raise
        await asyncio.sleep(0.1 * attempt)
        attempt += 1


def query_failure_type(err: WorkflowQueryFailedError) -> str | None:
    """The type of the error the lead's query handler raised (e.g. it refused the query for
    being ahead of its workflow task, or because it was erased). Failure messages travel
    encrypted (``nurture.privacy``) and the SDK hands a query's failure over as its message
    alone, so the failure's type, which is not encrypted, tells."""
    cause = err.__context__
    if not isinstance(cause, RPCError):
        return None
    for detail in cause.grpc_status.details:
        failed = QueryFailedFailure()
        if detail.Unpack(failed):
            return failed.failure.application_failure_info.type or None
    return None


def _lead_rpc_error(lead_id: str, err: RPCError) -> LeadActionError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return UnknownLeadError(
            f"no lead {lead_id!r}: nothing was ever sent for it (add it with "
            "'nurture lead add' or send an event with 'nurture event')"
        )
    return TemporalUnavailableError(
        f"lead {lead_id}: Temporal said {err.status.name}: {err.message}"
    )
