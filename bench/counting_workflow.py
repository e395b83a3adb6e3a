"""The engine's floor for the throughput benchmark: a workflow that only counts the events
signalled to it, fed exactly like a lead (signal-with-start, the same ``LeadEvent`` payload,
the pydantic data converter).

A workflow module: no side effects at import (the sandbox re-imports it).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from nurture.domain.leads import LeadEvent


@workflow.defn
class CountingWorkflow:
    """Counts ``event`` signals and waits forever, like a lead sleeping in its cadence."""

    def __init__(self) -> None:
        self._count = 0

    @workflow.run
    async def run(self, lead_id: str) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def event(self, event: LeadEvent) -> None:
        self._count += 1

    @workflow.query
    def count(self) -> int:
        return self._count
