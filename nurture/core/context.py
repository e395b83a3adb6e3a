"""What an email's template sees of the lead (touches and rep alerts alike).

Plain JSON values: the context travels in the activity's input and is rendered there.
"""

from __future__ import annotations

from typing import Any

from nurture.contract.messages import LeadState
from nurture.domain.rules import Rep


def template_context(state: LeadState) -> dict[str, Any]:
    """The lead as every template sees it: profile, score, grade, stage, owner, the story of
    its current handoff and the SLA due time (``None`` where it has none)."""
    return {
        "lead": {
            **state.profile.model_dump(mode="json"),
            "display_name": state.profile.display_name,
        },
        "score": state.score.total,
        "grade": state.grade,
        "stage": state.stage,
        "owner": state.owner,
        "story": state.handoff.story.model_dump(mode="json") if state.handoff else None,
        "sla_due_at": (
            state.handoff.sla_due_at.isoformat()
            if state.handoff and state.handoff.sla_due_at
            else None
        ),
    }


def step_context(state: LeadState, cadence_id: str, cycle: int, step: str) -> dict[str, Any]:
    """A cadence step's email or task: the lead, and where in its cadence the step is."""
    return {**template_context(state), "step": step, "cadence": cadence_id, "cycle": cycle}


def rep_alert_context(
    state: LeadState, rep: Rep, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An alert to a rep (handoff, escalation, reassignment, activity): the lead, the rep,
    and what the alert adds (``extra`` wins on a clash)."""
    return {**template_context(state), "rep": rep.model_dump(mode="json"), **(extra or {})}
