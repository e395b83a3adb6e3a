"""``nurture audit``: every lead's stage and owner from Temporal visibility, and the leads that
are at risk of being lost (in sales with no owner, past the SLA with no escalation, or whose
workflow is no longer running, unless the lead was erased) or blocked (a touch held because its
email cannot be rendered, from the read model)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client

from nurture.contract.names import LEAD_WORKFLOW, OWNER, SCORE, SLA_DUE, STAGE
from nurture.domain.stages import SALES_STAGES, STAGES
from nurture.privacy.erasure import was_erased
from nurture.reports.held import held_touches as held_touches_now


@dataclass
class AuditReport:
    leads: int = 0
    per_stage: Counter[str] = field(default_factory=Counter)
    problems: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    held_touches: int = 0
    """Touches blocked because their email cannot be rendered (each also a problem)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "leads": self.leads,
            "per_stage": dict(self.per_stage),
            "held_touches": self.held_touches,
            "problems": self.problems,
            "ok": not self.problems,
        }


def held_touches(engine: Engine) -> list[dict[str, Any]]:
    """Touches held (their email cannot be rendered) and not sent or skipped since, oldest
    first, as audit problems."""
    _, held = held_touches_now(engine, limit=None)
    return [
        {
            "lead_id": touch.lead_id,
            "stage": touch.stage,
            "owner": touch.owner,
            "touch": f"{touch.cadence}/{touch.step} (cycle {touch.cycle})",
            "held_since": touch.since.isoformat(),
            "reason": touch.reason,
            "problem": f"touch {touch.cadence}/{touch.step} held since "
            f"{touch.since:%Y-%m-%d %H:%M}: {touch.reason} (blocked until the template is fixed)",
        }
        for touch in held
    ]


async def audit(
    client: Client, grace: timedelta = timedelta(minutes=1), engine: Engine | None = None
) -> AuditReport:
    """With ``engine`` (the read model) held touches are listed as problems too."""
    report = AuditReport()
    now = datetime.now(UTC)
    newest: dict[str, Any] = {}
    async for wf in client.list_workflows(f"WorkflowType = '{LEAD_WORKFLOW}'"):
        if wf.status is not None and wf.status.name == "CONTINUED_AS_NEW":
            continue
        seen = newest.get(wf.id)
        if seen is None or wf.start_time > seen.start_time:  # a lead restarted after a failure
            newest[wf.id] = wf
    for wf in sorted(newest.values(), key=lambda w: w.id):
        lead_id = wf.id.removeprefix("lead-")
        terminated = wf.status is not None and wf.status.name == "TERMINATED"
        if (
            terminated
            and engine is not None
            and await asyncio.to_thread(was_erased, engine, lead_id)
        ):
            report.per_stage["(erased)"] += 1  # forgotten on purpose: nothing to look after
            continue
        attrs = wf.typed_search_attributes
        stage = attrs.get(STAGE)
        owner = attrs.get(OWNER)
        due = attrs.get(SLA_DUE)
        row = {
            "lead_id": lead_id,
            "stage": stage,
            "owner": owner,
            "score": attrs.get(SCORE),
            "sla_due_at": due.isoformat() if due else None,
        }
        report.rows.append(row)
        report.leads += 1
        if wf.status is not None and wf.status.name != "RUNNING":
            report.problems.append(
                {
                    **row,
                    "problem": f"workflow {wf.status.name.lower()}: "
                    "the lead is no longer looked after",
                }
            )
            report.per_stage["(closed workflow)"] += 1
            continue
        report.per_stage[stage or "(starting)"] += 1
        if stage is None and wf.start_time < now - grace:
            report.problems.append({**row, "problem": "no stage published"})
        elif stage is not None and stage not in STAGES:
            report.problems.append({**row, "problem": f"unknown stage {stage!r}"})
        elif stage in SALES_STAGES and not owner:
            report.problems.append({**row, "problem": "in sales with no owner"})
        elif stage == "assigned" and due is not None and due < now - grace:
            report.problems.append({**row, "problem": "past its SLA deadline, not escalated"})
        elif stage == "assigned" and due is None:
            report.problems.append({**row, "problem": "assigned with no SLA deadline"})
    if engine is not None:
        held = held_touches(engine)
        report.held_touches = len(held)
        report.problems.extend(held)
    return report
