"""What a handoff to sales carries (the rep's story) and how it stands (its status)."""

from __future__ import annotations

from nurture.contract.ledger import HandoffStatus
from nurture.contract.messages import LeadState, Story
from nurture.domain import scoring

TOP_BEHAVIOURS_TOLD = 8
RECENT_ACTIVITY_TOLD = 10

_STATUS_BY_STAGE: dict[str, HandoffStatus] = {
    "assigned": "open",
    "working": "accepted",
    "won": "won",
    "lost": "lost",
}


def story_for(state: LeadState, qualified_by: str) -> Story:
    """What the rep needs to act: where the lead came from, why it is sales-ready now (the
    behaviours that scored most, fit aside) and what it did last."""
    return Story(
        campaign=state.profile.campaign,
        qualified_by=qualified_by,
        score=state.score.total,
        grade=state.grade,
        fit=dict(state.score.fit_matches),
        top_behaviours=[
            row for row in scoring.explain(state.score) if not row[0].startswith("fit:")
        ][:TOP_BEHAVIOURS_TOLD],
        recent=list(state.score.recent[-RECENT_ACTIVITY_TOLD:]),
    )


def handoff_status(stage: str) -> HandoffStatus:
    """The current handoff's status in a lead at ``stage``: back in marketing (recycled,
    suppressed) means sales rejected it."""
    return _STATUS_BY_STAGE.get(stage, "rejected")
