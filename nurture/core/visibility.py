"""What operators see of a lead in Temporal's visibility (its search attributes).

No personal data here: visibility is not encrypted. The names are the registered search
attributes (``SEARCH_ATTRIBUTES`` in ``nurture/contract/names.py``, in the same order).
"""

from __future__ import annotations

from datetime import datetime

from nurture.contract.messages import LeadState

SearchValue = str | int | datetime | None
"""A search attribute's value; ``None`` unsets it."""


def search_attributes(state: LeadState) -> dict[str, SearchValue]:
    """Every search attribute's value for the lead as it is (``SlaDueAt`` only while the rep's
    SLA clock runs: in ``assigned``)."""
    return {
        "LeadStage": state.stage,
        "LeadScore": state.score.total,
        "LeadGrade": state.grade,
        "LeadOwner": state.owner,
        "LeadSegment": state.segment,
        "LeadCampaign": state.profile.campaign,
        "SlaDueAt": state.handoff.sla_due_at
        if state.handoff and state.stage == "assigned"
        else None,
    }


def changed(
    values: dict[str, SearchValue], published: dict[str, SearchValue]
) -> dict[str, SearchValue]:
    """The entries of ``values`` not published with that value yet, in ``values``' order
    (a name never published counts as changed, even to ``None``: the first publish of a run
    states everything)."""
    return {
        name: value
        for name, value in values.items()
        if name not in published or published[name] != value
    }
