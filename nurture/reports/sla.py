"""``sla``: how fast each rep answered the leads handed to them, against the SLA deadline.

One GROUP BY over ``salesassignment`` (a row per rep turn, counted when the turn began in the
period; whether a turn only continues the rep's own comes from one window over the turns) and
one nearest-rank median of the stored ``seconds_to_response`` per rep and overall.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.engine import Engine

from nurture.reports.base import (
    Report,
    ReportQuery,
    ReportTable,
    new_report,
    percentiles,
    ratio,
    report,
)
from nurture.reports.tables import TURN

#: 1 for a turn the SLA ended by handing the lead back to the same rep.
_HANDED_BACK = case((TURN.c.reassigned_to == TURN.c.rep, 1), else_=0)
#: Every turn, with how many *other* turns of the same handoff and rep, begun no later (ties
#: included), handed the lead back to that rep. One windowed pass over the turns, not an
#: EXISTS per turn: SQLite planned that on the rep's index and read every earlier turn of the
#: rep for each one (two minutes at 100,000 leads), and PostgreSQL spent more compiling four
#: such subplans than running them. Over all turns, the period applied outside: the turn a
#: turn continues may have begun before the period.
TURNS = select(
    TURN.c.rep,
    TURN.c.at,
    TURN.c.due_at,
    TURN.c.responded_at,
    TURN.c.misses,
    TURN.c.escalations,
    TURN.c.reassigned_to,
    (
        func.sum(_HANDED_BACK).over(
            partition_by=(TURN.c.lead_id, TURN.c.handoff, TURN.c.rep),
            order_by=TURN.c.at,
            range_=(None, 0),
        )
        - _HANDED_BACK
    ).label("handed_back_before"),
).subquery("turns")

#: A turn that only continues the rep's own earlier one: the SLA handed the lead back to its
#: owner (leads from before issue 13 did). Not a new lead received; its misses still count.
SAME_OWNER_AGAIN = TURNS.c.handed_back_before > 0
RECEIVED = ~SAME_OWNER_AGAIN
#: Reassigned to someone else (a reassignment to the rep themself is no handoff away).
REASSIGNED_AWAY = and_(TURNS.c.reassigned_to.is_not(None), TURNS.c.reassigned_to != TURNS.c.rep)
RESPONDED = TURNS.c.responded_at.is_not(None)
#: Answered before the deadline (a turn without one cannot be late) and never missed.
IN_TIME = and_(
    RECEIVED,
    RESPONDED,
    TURNS.c.misses == 0,
    or_(TURNS.c.due_at.is_(None), TURNS.c.responded_at <= TURNS.c.due_at),
)
#: Answered, but after the deadline or after a miss was recorded (a continued turn always
#: follows a miss).
LATE = and_(
    RESPONDED,
    or_(
        SAME_OWNER_AGAIN,
        TURNS.c.misses > 0,
        and_(TURNS.c.due_at.is_not(None), TURNS.c.responded_at > TURNS.c.due_at),
    ),
)
#: Not answered and not missed yet: the clock is still running.
OPEN = and_(RECEIVED, TURNS.c.responded_at.is_(None), TURNS.c.misses == 0)

COLUMNS = [
    "rep",
    "received",
    "responded_in_time",
    "responded_late",
    "misses",
    "escalations",
    "reassigned_away",
    "open",
    "compliance",
    "median_minutes_to_response",
]

NOTES = [
    "A rep's turn counts when the lead was assigned to the rep in the period (once per "
    "handoff to them: a lead handed back to the rep who held it is no new one). In time: the rep "
    "accepted, contacted or rejected the lead before the SLA deadline and no miss was recorded; "
    "late: the response came after the deadline or after a miss; open: no response and no "
    "miss yet.",
    "Compliance is the share in time of the turns that are no longer open (a turn missed and "
    "never answered counts against it); response times are nearest-rank medians, in minutes.",
]


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


@report("sla", "SLA compliance")
def sla_report(engine: Engine, query: ReportQuery) -> Report:
    per_rep = (
        select(
            TURNS.c.rep,
            _count(RECEIVED).label("received"),
            _count(IN_TIME).label("in_time"),
            _count(LATE).label("late"),
            func.coalesce(func.sum(TURNS.c.misses), 0).label("misses"),
            func.coalesce(func.sum(TURNS.c.escalations), 0).label("escalations"),
            _count(REASSIGNED_AWAY).label("reassigned_away"),
            _count(OPEN).label("open"),
        )
        .where(query.in_period(TURNS.c.at))
        .group_by(TURNS.c.rep)
        .order_by(TURNS.c.rep)
    )
    waits = select(TURN.c.rep, TURN.c.seconds_to_response.label("seconds")).where(
        query.in_period(TURN.c.at), TURN.c.seconds_to_response.is_not(None)
    )
    with engine.connect() as conn:
        counted = {rep: [int(n) for n in counts] for rep, *counts in conn.execute(per_rep)}
        medians = {
            rep: p50 for rep, _n, p50 in conn.execute(percentiles(waits, ["rep"], "seconds", [0.5]))
        }
        _n, overall = conn.execute(percentiles(waits, [], "seconds", [0.5])).one()
    rows: list[list[Any]] = [
        [rep, *counts, ratio(counts[1], counts[0] - counts[6]), minutes(medians.get(rep))]
        for rep, counts in counted.items()
    ]
    received, in_time, _late, misses, _escalations, _away, still_open = (
        sum(counts[i] for counts in counted.values()) for i in range(7)
    )
    return new_report(
        "sla",
        query,
        summary={
            "received": received,
            "responded_in_time": in_time,
            "misses": misses,
            "compliance": ratio(in_time, received - still_open),
            "median_minutes_to_response": minutes(overall),
        },
        tables=[
            ReportTable(name="reps", title="SLA by rep", columns=COLUMNS, rows=rows),
        ],
        notes=NOTES,
    )


def minutes(seconds: float | None) -> float | None:
    """Seconds (from SQL) as minutes, to two decimals."""
    return None if seconds is None else round(float(seconds) / 60, 2)
