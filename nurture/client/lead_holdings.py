"""What Temporal holds on one lead, for its export (``nurture.privacy.export``): the workflow,
its ``state`` query, and the CRM writes its histories hold, followed back through every run
continued as new. A closed or missing workflow is said in ``missing``, not raised."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from nurture.client.sales import TemporalUnavailableError, UnknownLeadError, query_state
from nurture.contract.messages import (
    CRM_ADD_TASK,
    CRM_UPSERT_LEAD,
    CrmLeadUpsert,
    CrmNote,
    LeadState,
)
from nurture.domain.leads import workflow_id_for
from nurture.privacy.erasure import lead_ref
from nurture.privacy.export import (
    LEAD_ID_RULE,
    NothingHeldError,
    TemporalHoldings,
    build_document,
    can_be_a_lead_id,
)
from nurture.store.erasure_receipts import receipts_for

STATE_TIMEOUT = timedelta(seconds=15)
"""How long the state query may take: a lead whose worker is gone does not answer at all."""
CRM_REQUESTS: dict[str, type[CrmLeadUpsert | CrmNote]] = {
    CRM_UPSERT_LEAD: CrmLeadUpsert,
    CRM_ADD_TASK: CrmNote,
}


async def export_lead(client: Client, engine: Engine, lead_id: str) -> dict[str, Any]:
    """The lead's export document; :class:`UnknownLeadError` when nothing holds the lead,
    :class:`TemporalUnavailableError` when Temporal cannot be asked at all."""
    if not can_be_a_lead_id(lead_id):
        raise UnknownLeadError(f"no lead has this id: {LEAD_ID_RULE}")
    held = await temporal_holdings(client, lead_id)
    if not (held.workflow and held.workflow["status"] == "running"):
        erased = await asyncio.to_thread(lambda: receipts_for(engine, lead_ref(engine, lead_id)))
        if erased:  # what remains (a closed workflow, pseudonymised rows) is no one's data
            raise UnknownLeadError(
                f"no lead {lead_id!r}: it was erased on {erased[0].finished_at:%Y-%m-%d} "
                f"(receipt {erased[0].erasure_id}: 'nurture lead erasure {lead_id}')"
            )
    try:
        return await asyncio.to_thread(build_document, engine, lead_id, held)
    except NothingHeldError as exc:
        raise UnknownLeadError(str(exc)) from None


async def temporal_holdings(client: Client, lead_id: str) -> TemporalHoldings:
    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    try:
        described = await handle.describe(rpc_timeout=STATE_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return TemporalHoldings(
                workflow=None,
                state=None,
                missing=[
                    "workflow: Temporal holds no workflow for this lead (never started, "
                    "or its history is past the namespace's retention)"
                ],
            )
        raise TemporalUnavailableError(
            f"lead {lead_id}: Temporal said {err.status.name}: {err.message}"
        ) from err
    missing: list[str] = []
    state = await _state(client, lead_id, missing)
    runs, pushes = await _crm_pushes(client, described, missing)
    return TemporalHoldings(
        workflow=_workflow(described, runs), state=state, crm_pushes=pushes, missing=missing
    )


async def _state(client: Client, lead_id: str, missing: list[str]) -> LeadState | None:
    handle = client.get_workflow_handle(workflow_id_for(lead_id))
    try:
        return await asyncio.wait_for(query_state(handle), STATE_TIMEOUT.total_seconds())
    except (TimeoutError, RPCError, WorkflowQueryFailedError) as exc:
        reason = "no worker answered in time" if isinstance(exc, TimeoutError) else exc.message
        missing.append(f"state: the lead's workflow did not answer its state query ({reason})")
        return None


def _workflow(described: WorkflowExecutionDescription, runs: list[str]) -> dict[str, Any]:
    def iso(moment: Any) -> str | None:
        return moment.astimezone(UTC).isoformat() if moment else None

    return {
        "id": described.id,
        "status": described.status.name.lower() if described.status else None,
        "started_at": iso(described.start_time),
        "closed_at": iso(described.close_time),
        "runs": runs,
    }


async def _crm_pushes(
    client: Client, described: WorkflowExecutionDescription, missing: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The run ids from the newest back (each run's first event names the run it continues)
    and every CRM write their histories hold, oldest first."""
    runs: list[str] = []
    pushes: list[dict[str, Any]] = []
    run_id: str | None = described.run_id
    while run_id:
        runs.append(run_id)
        try:
            history = await client.get_workflow_handle(described.id, run_id=run_id).fetch_history()
        except RPCError as err:  # an older run past retention
            missing.append(f"crm_pushes: run {run_id} could not be read ({err.message})")
            break
        try:
            pushes[:0] = await _pushes_in(client, run_id, history.events)
        except Exception as exc:  # e.g. its data key destroyed: the rest is still exported
            missing.append(f"crm_pushes: run {run_id} could not be decoded ({exc})")
        first = history.events[0] if history.events else None
        started = first.workflow_execution_started_event_attributes if first else None
        run_id = started.continued_execution_run_id if started else None
    return runs, pushes


async def _pushes_in(
    client: Client, run_id: str, events: Sequence[HistoryEvent]
) -> list[dict[str, Any]]:
    scheduled: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            kind = CRM_REQUESTS.get(attrs.activity_type.name)
            if kind is None:
                continue
            (request,) = await client.data_converter.decode(attrs.input.payloads, [kind])
            scheduled[event.event_id] = {
                "at": event.event_time.ToDatetime(tzinfo=UTC).isoformat(),
                "run_id": run_id,
                "status": "scheduled",
                "error": None,
                **request.model_dump(mode="json"),
            }
        elif event.HasField("activity_task_completed_event_attributes"):
            done = scheduled.get(event.activity_task_completed_event_attributes.scheduled_event_id)
            if done is not None:
                done["status"] = "completed"
        elif event.HasField("activity_task_failed_event_attributes"):
            attrs_failed = event.activity_task_failed_event_attributes
            failed = scheduled.get(attrs_failed.scheduled_event_id)
            if failed is not None:
                error = await client.data_converter.decode_failure(attrs_failed.failure)
                failed.update(status="failed", error=str(error))
    return list(scheduled.values())
