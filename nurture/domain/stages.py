"""The stages a lead moves through and which rep actions are legal in each."""

from __future__ import annotations

from typing import Literal

Stage = Literal["nurturing", "recycled", "assigned", "working", "won", "lost", "suppressed"]
STAGES: tuple[Stage, ...] = (
    "nurturing",
    "recycled",
    "assigned",
    "working",
    "won",
    "lost",
    "suppressed",
)
MARKETING_STAGES: frozenset[Stage] = frozenset({"nurturing", "recycled", "suppressed"})
SALES_STAGES: frozenset[Stage] = frozenset({"assigned", "working"})
CLOSED_STAGES: frozenset[Stage] = frozenset({"won", "lost"})

RepAction = Literal["accept", "contact", "reject", "outcome"]
_ALLOWED_FROM: dict[RepAction, frozenset[Stage]] = {
    "accept": SALES_STAGES,
    "contact": SALES_STAGES,
    "reject": SALES_STAGES,
    "outcome": frozenset({"working"}),
}


def unknown_rep_error(rep: str) -> str:
    return f"unknown rep {rep!r}: not listed in routing.yaml"


def rep_action_error(
    action: RepAction, stage: Stage, owner: str | None, rep: str, known_rep: bool
) -> str | None:
    """Why ``rep`` may not take ``action`` now, or None when it may."""
    if not known_rep:
        return unknown_rep_error(rep)
    if stage not in _ALLOWED_FROM[action]:
        hint = (
            " (accept or contact it first)" if action == "outcome" and stage == "assigned" else ""
        )
        return f"cannot {action} a lead in stage {stage!r}{hint}"
    if owner != rep:
        return f"rep {rep!r} does not own this lead (owner: {owner or 'nobody'})"
    return None
