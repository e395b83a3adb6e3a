"""The retention sweep: started daily by the ``nurture-retention`` Temporal Schedule, it erases
every lead that went cold (``engine.yaml``: ``erase_cold_leads_after``).

It finds cold leads in batches (an activity over the read model) and erases each as ``nurture
lead forget`` does: the same erasure workflow, as a child, with the same id, so a lead someone
is erasing by hand at that moment is erased once. It waits for each batch (an erased lead
leaves the read model under a pseudonym, so the next batch holds new leads) and starts a
fresh run after a few batches, keeping its history small however many leads went cold.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from nurture.contract.erasure import (
        ERASURE_WORKFLOW,
        ErasureReceiptFields,
        ErasureRequest,
        erasure_workflow_id,
    )
    from nurture.contract.retention import (
        FIND_COLD_LEADS,
        RETENTION_WORKFLOW,
        ColdLead,
        ColdLeadQuery,
        RetentionRequest,
    )

BATCHES_PER_RUN = 20


@workflow.defn(name=RETENTION_WORKFLOW)
class RetentionSweep:
    @workflow.run
    async def run(self, request: RetentionRequest) -> int:
        """Erase every cold lead; return how many this run erased."""
        cutoff = workflow.now() - request.cold_after
        erased = 0
        for _ in range(BATCHES_PER_RUN):
            batch: list[ColdLead] = await workflow.execute_activity(
                FIND_COLD_LEADS,
                ColdLeadQuery(cutoff=cutoff, limit=request.batch),
                result_type=list[ColdLead],
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
            )
            if not batch:
                return erased
            reason = f"retention: no activity since {cutoff:%Y-%m-%d}"
            results = await asyncio.gather(*(self._erase(lead, reason) for lead in batch))
            if not any(results):  # every one is being erased by hand: nothing to wait for
                return erased
            erased += sum(results)
        workflow.continue_as_new(request)

    @staticmethod
    async def _erase(lead: ColdLead, reason: str) -> bool:
        request = ErasureRequest(
            lead_id=lead.lead_id,
            lead_ref=lead.lead_ref,
            requested_by="retention",
            reason=reason,
            requested_at=workflow.now(),
        )
        try:
            await workflow.execute_child_workflow(
                ERASURE_WORKFLOW,
                request,
                id=erasure_workflow_id(lead.lead_ref),
                result_type=ErasureReceiptFields,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:  # being erased by hand right now: that one counts
            return False
        return True
