"""Which cadence a lead follows, when its next touch is due, and what comes after it.

Plain functions over :class:`CadenceProgress`; the workflow only sleeps until ``due_at``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from nurture.domain.leads import LeadProfile
from nurture.domain.matching import condition_holds
from nurture.domain.rules import Cadence, CadenceBook, CadenceStep


class CadenceProgress(BaseModel):
    """Where a lead stands in a cadence. ``enrolment`` counts enrolments over the lead's life,
    so a lead recycled twice gets distinct touch keys each time."""

    cadence_id: str
    enrolment: int
    cycle: int = 1
    step_index: int = 0
    due_at: datetime | None = None
    parked: bool = False
    waiting_task: str | None = None  # key of the task this step waits on, until due_at


def select_cadence(profile: LeadProfile, book: CadenceBook) -> Cadence:
    """The first nurture cadence whose segment matches (the book guarantees a catch-all)."""
    fields = profile.fields()
    return next(c for c in book.cadences if not c.recycle and condition_holds(c.segment, fields))


def enrol(cadence: Cadence, enrolment: int, now: datetime) -> CadenceProgress:
    return CadenceProgress(
        cadence_id=cadence.id, enrolment=enrolment, due_at=now + cadence.steps[0].delay
    )


def current_step(progress: CadenceProgress, cadence: Cadence) -> CadenceStep | None:
    if progress.parked or progress.step_index >= len(cadence.steps):
        return None
    return cadence.steps[progress.step_index]


def advance(progress: CadenceProgress, cadence: Cadence, now: datetime) -> CadenceProgress:
    """After the current touch: schedule the next step, the next cycle, or park the lead."""
    nxt = progress.step_index + 1
    if nxt < len(cadence.steps):
        return progress.model_copy(
            update={"step_index": nxt, "due_at": now + cadence.steps[nxt].delay}
        )
    if progress.cycle < cadence.cycles:
        return progress.model_copy(
            update={
                "cycle": progress.cycle + 1,
                "step_index": 0,
                "due_at": now + cadence.between_cycles + cadence.steps[0].delay,
            }
        )
    return progress.model_copy(update={"parked": True, "due_at": None})


def touch_key(lead_id: str, progress: CadenceProgress, step: CadenceStep) -> str:
    """Idempotency key of one touch: lead + cadence + enrolment + cycle + step."""
    return (
        f"touch:{lead_id}:{progress.cadence_id}:e{progress.enrolment}:c{progress.cycle}:{step.name}"
    )


def total_touches(cadence: Cadence) -> int:
    return len(cadence.steps) * cadence.cycles
