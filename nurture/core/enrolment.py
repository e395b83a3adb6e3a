"""When a lead may be put in another cadence than the one it is in."""

from __future__ import annotations

from nurture.contract.messages import LeadState


def may_resegment(state: LeadState) -> bool:
    """Whether a profile update may move the lead to a better-fitting segment's cadence:
    only while it has had nothing of its first nurture cadence yet (no touch sent, first
    step of the first cycle, no task waiting), so no lead gets a second welcome."""
    progress = state.cadence
    return (
        state.stage == "nurturing"
        and progress is not None
        and progress.step_index == 0
        and progress.cycle == 1
        and state.touches_sent == 0
        and progress.waiting_task is None
    )
