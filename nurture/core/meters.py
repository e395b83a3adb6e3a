"""What a lead adds to the engine's counters (``nurture_events_total``…): read from its state,
so a counter moves by what the lead did since it was last read, whichever way it got there.
The workflow reports the differences on Temporal's metric meter, which stays silent while a
history replays: nothing is counted twice."""

from __future__ import annotations

from typing import NamedTuple

from nurture.contract.messages import LeadState
from nurture.contract.names import EVENTS_COUNTER, HANDOFFS_COUNTER, SLA_MISSES_COUNTER


class Tallies(NamedTuple):
    events: int
    handoffs: int
    sla_misses: int


def tallies(state: LeadState) -> Tallies:
    return Tallies(
        events=state.events_applied,
        handoffs=state.handoffs,
        sla_misses=sum(turn.misses for turn in state.assignments),
    )


def moved(before: Tallies, after: Tallies) -> dict[str, int]:
    """Each counter's increase from ``before`` to ``after`` (none that did not grow)."""
    names = (EVENTS_COUNTER, HANDOFFS_COUNTER, SLA_MISSES_COUNTER)
    return {name: a - b for name, b, a in zip(names, before, after, strict=True) if a > b}
