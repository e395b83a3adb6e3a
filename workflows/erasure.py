"""The erasure of one lead, as a workflow: durable (a worker killed half-way, another one
finishes it) and idempotent (every step can run again and lands on the same result).

In order, each step an activity retried until it succeeds:

1. the lead's addresses go on the suppression list (as keyed digests only) and to the mail
   provider's erasure; provider events naming them are cleared. First, while everything that
   names the addresses is still readable; from here on no touch can reach them;
2. the lead is told to forget (it refuses its state query from then on) and its workflow is
   terminated (a closed one is fine);
3. the lead is deleted from the CRM (where one is configured);
4. the lead's data keys are destroyed: every run's history, current or closed, is unreadable;
5. its read-model rows are pseudonymised (reports keep their counts and sums);
6. the receipt is written.

Nothing personal goes through this history but the lead id (steps return counts only).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from nurture.contract.erasure import (
        DELETE_FROM_CRM,
        ERASE_ADDRESSES,
        ERASED_PREFIX,
        ERASURE_WORKFLOW,
        KEEP_RECEIPT,
        PSEUDONYMISE,
        SHRED_KEYS,
        TERMINATE_LEAD,
        AddressesErased,
        ErasureReceiptFields,
        ErasureRequest,
        LeadRef,
        PseudonymiseRequest,
    )
    from nurture.domain.leads import workflow_id_for

UNTIL_DONE = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
"""An erasure is owed: every step is retried until it succeeds (an outage only delays it)."""

Result = TypeVar("Result")


@workflow.defn(name=ERASURE_WORKFLOW)
class ErasureWorkflow:
    @workflow.run
    async def run(self, request: ErasureRequest) -> ErasureReceiptFields:
        self._timeout = request.step_timeout
        lead = LeadRef(lead_id=request.lead_id, workflow_id=workflow_id_for(request.lead_id))
        addresses = await self._step(ERASE_ADDRESSES, lead, AddressesErased)
        terminated = await self._step(TERMINATE_LEAD, lead, bool)
        crm_records = await self._step(DELETE_FROM_CRM, lead, int)
        keys = await self._step(SHRED_KEYS, lead, int)
        # A pseudonym no one can derive from the lead id: only this (encrypted) history and
        # the rows themselves hold it.
        pseudonym = f"{ERASED_PREFIX}{workflow.uuid4().hex}"
        rows = await self._step(
            PSEUDONYMISE,
            PseudonymiseRequest(lead_id=request.lead_id, pseudonym=pseudonym),
            dict[str, int],
        )
        erased = {
            "addresses": addresses.addresses,
            "addresses_newly_suppressed": addresses.newly_suppressed,
            "provider_events": addresses.webhook_events,
            "provider_erasure_requests": addresses.provider_erasure_requests,
            "workflow_terminated": int(terminated),
            "crm_records": crm_records,
            "data_keys": keys,
            **{f"rows_{table}": count for table, count in sorted(rows.items())},
        }
        receipt = ErasureReceiptFields(
            erasure_id=workflow.info().run_id,
            lead_ref=request.lead_ref,
            requested_at=request.requested_at,
            finished_at=workflow.now(),
            requested_by=request.requested_by,
            reason=request.reason,
            erased=erased,
        )
        return await self._step(KEEP_RECEIPT, receipt, ErasureReceiptFields)

    async def _step(self, name: str, argument: Any, result_type: type[Result]) -> Result:
        return await workflow.execute_activity(  # type: ignore[no-any-return]
            name,
            argument,
            result_type=result_type,
            start_to_close_timeout=self._timeout,
            retry_policy=UNTIL_DONE,
        )
