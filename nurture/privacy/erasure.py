"""Asking for an erasure and finding its receipt: what ``nurture lead forget`` / ``nurture lead
erasure`` and ``DELETE /api/leads/{id}`` call.

The erasure itself is a workflow (``workflows/erasure.py``): durable, so a crash half-way
finishes on restart, and one per lead at a time (its id is the lead's keyed digest, so a
second request joins the first). Once a lead is erased, asking again changes nothing and
answers the same receipt, unless the lead was started again since (a new event or profile
under the same id): then that new lead is erased too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from nurture.contract.erasure import (
    ERASURE_WORKFLOW,
    ErasureReceiptFields,
    ErasureRequest,
    erasure_workflow_id,
)
from nurture.contract.messages import TASK_QUEUE
from nurture.domain.leads import workflow_id_for
from nurture.store.clock import utcnow
from nurture.store.erasure_receipts import receipts_for
from nurture.store.read_model import LeadRecord
from nurture.store.salted import lead_digest, salt_of

WAIT_FOR_RECEIPT = timedelta(seconds=60)


class NoSuchLeadError(LookupError):
    """Nothing is held under this lead id: no workflow, no read-model row, no receipt."""


@dataclass(frozen=True)
class Erasure:
    """The answer to a request: the receipt once finished (``done``), else the erasure's id
    (still running; durable: it finishes without anyone waiting)."""

    erasure_id: str
    receipt: ErasureReceiptFields | None
    repeated: bool = False
    """The lead had been erased already: nothing was done now."""

    @property
    def done(self) -> bool:
        return self.receipt is not None


def lead_ref(engine: Engine, lead_id: str) -> str:
    """What receipts and the erasure's workflow id name the lead by."""
    return lead_digest(salt_of(engine), lead_id)


async def forget(
    client: Client,
    engine: Engine,
    lead_id: str,
    requested_by: str,
    reason: str | None = None,
    *,
    task_queue: str = TASK_QUEUE,
    wait: timedelta = WAIT_FOR_RECEIPT,
    step_timeout: timedelta | None = None,
) -> Erasure:
    """Erase the lead (see the module's docstring); wait up to ``wait`` for the receipt.
    Raises :class:`NoSuchLeadError` when nothing is held under ``lead_id``, and
    ``temporalio.service.RPCError`` when Temporal cannot be reached (retry)."""
    ref = await asyncio.to_thread(lead_ref, engine, lead_id)
    status = await lead_status(client, lead_id)
    if status != WorkflowExecutionStatus.RUNNING:
        earlier = await asyncio.to_thread(receipts_for, engine, ref)
        if earlier:
            return Erasure(earlier[0].erasure_id, earlier[0], repeated=True)
        if status is None and not await asyncio.to_thread(_in_read_model, engine, lead_id):
            raise NoSuchLeadError(f"no lead {lead_id!r}: nothing is held under that id")
    request = ErasureRequest(
        lead_id=lead_id,
        lead_ref=ref,
        requested_by=requested_by,
        reason=reason,
        requested_at=utcnow(),
    )
    if step_timeout is not None:
        request.step_timeout = step_timeout
    handle = await client.start_workflow(
        ERASURE_WORKFLOW,
        request,
        id=erasure_workflow_id(ref),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        result_type=ErasureReceiptFields,
    )
    try:
        receipt = await asyncio.wait_for(handle.result(), wait.total_seconds())
    except TimeoutError:
        return Erasure(handle.id, None)
    return Erasure(receipt.erasure_id, receipt)


def was_erased(engine: Engine, lead_id: str) -> bool:
    """Whether an erasure of this lead finished (its closed workflow is then no problem)."""
    return bool(receipts_for(engine, lead_ref(engine, lead_id)))


async def erasures_of(client: Client, engine: Engine, lead_id: str) -> list[Erasure]:
    """The lead's receipts, newest first, after its erasure still running if there is one."""
    ref = await asyncio.to_thread(lead_ref, engine, lead_id)
    done = [Erasure(r.erasure_id, r) for r in await asyncio.to_thread(receipts_for, engine, ref)]
    try:
        described = await client.get_workflow_handle(erasure_workflow_id(ref)).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return done
    if described.status == WorkflowExecutionStatus.RUNNING:
        return [Erasure(described.id, None), *done]
    return done


async def lead_status(client: Client, lead_id: str) -> WorkflowExecutionStatus | None:
    """The status of the lead's workflow (its newest run); None when Temporal has none."""
    try:
        described = await client.get_workflow_handle(workflow_id_for(lead_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status


def _in_read_model(engine: Engine, lead_id: str) -> bool:
    with Session(engine) as session:
        return session.get(LeadRecord, lead_id) is not None
