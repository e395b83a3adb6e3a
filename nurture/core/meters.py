"""What a lead adds to the engine's counters (``nurture_events_total``…): read from its state
and its read-model queue, so a counter moves by what the lead did since it was last read,
whichever way it got there.
The workflow reports the differences on Temporal's metric meter, which stays silent while a
history replays: nothing is counted twice."""

from __future__ import annotations

from typing import NamedTuple

from nurture.contract.ledger import Fact
from nurture.contract.messages import LeadState
from nurture.contract.names import (
    EVENTS_COUNTER,
    FACTS_DONE_COUNTER,
    FACTS_QUEUED_COUNTER,
    HANDOFFS_COUNTER,
    SLA_MISSES_COUNTER,
)
from nurture.core.commands import Queue


class Tallies(NamedTuple):
    events: int
    handoffs: int
    sla_misses: int
    facts_queued: int
    facts_written: int


def tallies(state: LeadState, ledger: Queue[Fact]) -> Tallies:
    return Tallies(
        events=state.events_applied,
        handoffs=state.handoffs,
        sla_misses=sum(turn.misses for turn in state.assignments),
        facts_queued=ledger.added,
        facts_written=ledger.taken,
    )


def moved(before: Tallies, after: Tallies) -> dict[str, int]:
    """Each counter's increase from ``before`` to ``after`` (none that did not grow)."""
    names = (
        EVENTS_COUNTER,
        HANDOFFS_COUNTER,
        SLA_MISSES_COUNTER,
        FACTS_QUEUED_COUNTER,
        FACTS_DONE_COUNTER,
    )
    return {name: a - b for name, b, a in zip(names, before, after, strict=True) if a > b}
