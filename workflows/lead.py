"""The lead workflow as Temporal knows it: its name, its init and its run.

Temporal's sandbox executes this module afresh for every lead it starts or brings back into a
worker's cache, so it holds only the definition; the life of a lead is ``LeadShell``
(``workflows/lead_shell.py``), passed through the sandbox and imported once per process, and
its decisions are the core's (``nurture/core/lead.py``).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from nurture.contract.messages import LeadInput
    from nurture.contract.names import LEAD_WORKFLOW
    from workflows.lead_shell import LeadShell


@workflow.defn(name=LEAD_WORKFLOW)
class LeadWorkflow(LeadShell):
    @workflow.init
    def __init__(self, inp: LeadInput) -> None:
        super().__init__(inp)

    @workflow.run
    async def run(self, inp: LeadInput) -> None:
        await self.live(inp)
