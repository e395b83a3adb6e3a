"""``funnel``: where leads are now, which leads entered each stage in the period, how the
period's new leads (the cohort) went on, and how long stays in each stage lasted.

Four GROUP BY queries over ``lead`` and ``stagetransition``; Python only orders the rows.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select, union, union_all
from sqlalchemy.engine import Connection, Engine

from nurture.domain.stages import STAGES
from nurture.reports.base import (
    Report,
    ReportQuery,
    ReportTable,
    format_duration,
    new_report,
    percentiles,
    ratio,
    report,
)
from nurture.reports.tables import LEAD, TRANSITION

#: The stages whose reach the cohort query flags, per lead.
REACHED = ("assigned", "working", "won", "lost")
#: The cohort's path: each step's leads are those of the step before that also reached it.
CONVERSION_PATH = ("created", "assigned", "working", "won")

NOTES = [
    "Leads created, handed off, accepted, won and lost (and the conversion table) follow the "
    "leads created in the period: whether each has ever reached assigned, working, won or lost "
    "so far. 'Entered' counts the distinct leads that moved into each stage during the period "
    "(a new lead enters its first stage when it is created).",
    "Time in stage covers the stays that ended in the period (the lead moved on); median and "
    "p90 are nearest-rank, in hours (median_hours, p90_hours) and in a unit that suits them "
    "(median, p90).",
]


@report("funnel", "Funnel")
def funnel_report(engine: Engine, query: ReportQuery) -> Report:
    with engine.connect() as conn:
        stages_now = _stages_now(conn)
        entered = _entered(conn, query)
        cohort = _cohort(conn, query)
        stays = _time_in_stage(conn, query)
    created = cohort["created"]
    along = [created] + [cohort[f"path:{stage}"] for stage in CONVERSION_PATH[1:]]
    conversion = [
        [before, after, along[i], along[i + 1], ratio(along[i + 1], along[i])]
        for i, (before, after) in enumerate(itertools.pairwise(CONVERSION_PATH))
    ]
    return new_report(
        "funnel",
        query,
        summary={
            "leads_created": created,
            "handed_off": cohort["assigned"],
            "accepted": cohort["working"],
            "won": cohort["won"],
            "lost": cohort["lost"],
        },
        tables=[
            ReportTable(
                name="stages_now",
                title="Leads by current stage",
                columns=["stage", "leads"],
                rows=stages_now,
            ),
            ReportTable(
                name="entered",
                title="Leads that entered each stage in the period",
                columns=["stage", "leads"],
                rows=entered,
            ),
            ReportTable(
                name="conversion",
                title="Conversion of the leads created in the period",
                columns=["from", "to", "leads_from", "leads_to", "rate"],
                rows=conversion,
            ),
            ReportTable(
                name="time_in_stage",
                title="Time in stage (stays that ended in the period)",
                columns=["stage", "stays", "median_hours", "p90_hours", "median", "p90"],
                rows=stays,
            ),
        ],
        notes=NOTES,
    )


def _in_stage_order(counts: dict[str, Any]) -> list[str]:
    """Every known stage in funnel order, then any other stage found in the data."""
    return [*STAGES, *sorted(s for s in counts if s not in STAGES)]


def _stages_now(conn: Connection) -> list[list[Any]]:
    counts = {
        stage: n
        for stage, n in conn.execute(
            select(LEAD.c.stage, func.count()).group_by(LEAD.c.stage)
        ).all()
    }
    return [[stage, counts.get(stage, 0)] for stage in _in_stage_order(counts)]


def _entered(conn: Connection, query: ReportQuery) -> list[list[Any]]:
    moved = select(TRANSITION.c.lead_id, TRANSITION.c.to_stage.label("stage")).where(
        query.in_period(TRANSITION.c.at),
        # a reassignment or a re-chase is no entry: the lead was in the stage already
        TRANSITION.c.from_stage.is_distinct_from(TRANSITION.c.to_stage),
    )
    entries = union(moved, _first_stages(query)).subquery()  # UNION: one row per lead, stage
    counts = {
        stage: n
        for stage, n in conn.execute(
            select(entries.c.stage, func.count()).group_by(entries.c.stage)
        ).all()
    }
    return [[stage, counts.get(stage, 0)] for stage in _in_stage_order(counts)]


def _first_stages(query: ReportQuery) -> Select[Any]:
    """The stage each lead created in the period started in: where its earliest transition
    came from (or went to, for a transition recording the creation), else the stage it is
    still in."""
    in_cohort = query.in_period(LEAD.c.created_at)
    ranked = (
        select(
            TRANSITION.c.lead_id,
            func.coalesce(TRANSITION.c.from_stage, TRANSITION.c.to_stage).label("stage"),
            func.row_number()
            .over(partition_by=TRANSITION.c.lead_id, order_by=(TRANSITION.c.at, TRANSITION.c.key))
            .label("n"),
        )
        .join(LEAD, LEAD.c.lead_id == TRANSITION.c.lead_id)
        .where(in_cohort)
        .subquery()
    )
    return (
        select(LEAD.c.lead_id, func.coalesce(ranked.c.stage, LEAD.c.stage).label("stage"))
        .outerjoin(ranked, and_(ranked.c.lead_id == LEAD.c.lead_id, ranked.c.n == 1))
        .where(in_cohort)
    )


def _cohort(conn: Connection, query: ReportQuery) -> dict[str, int]:
    """Of the leads created in the period: how many, how many ever reached each stage of
    ``REACHED`` (key: the stage) and how many went each step of the conversion path, every
    step before included (key: ``path:`` and the stage)."""
    in_cohort = query.in_period(LEAD.c.created_at)
    reached = union_all(
        select(TRANSITION.c.lead_id, TRANSITION.c.to_stage.label("stage"))
        .join(LEAD, LEAD.c.lead_id == TRANSITION.c.lead_id)
        .where(in_cohort),
        select(LEAD.c.lead_id, LEAD.c.stage.label("stage")).where(in_cohort),
    ).subquery()
    per_lead = (
        select(
            reached.c.lead_id,
            *(
                func.max(case((reached.c.stage == stage, 1), else_=0)).label(stage)
                for stage in REACHED
            ),
        )
        .group_by(reached.c.lead_id)
        .subquery()
    )
    columns: dict[str, ColumnElement[Any]] = {"created": func.count()}
    columns.update({stage: func.sum(per_lead.c[stage]) for stage in REACHED})
    along: ColumnElement[Any] | None = None
    for stage in CONVERSION_PATH[1:]:
        along = per_lead.c[stage] if along is None else along * per_lead.c[stage]
        columns[f"path:{stage}"] = func.sum(along)
    values = conn.execute(select(*(c.label(f"c{i}") for i, c in enumerate(columns.values())))).one()
    return {name: int(value or 0) for name, value in zip(columns, values, strict=True)}


def _time_in_stage(conn: Connection, query: ReportQuery) -> list[list[Any]]:
    stays = select(
        TRANSITION.c.from_stage.label("stage"),
        TRANSITION.c.seconds_in_from_stage.label("seconds"),
    ).where(
        TRANSITION.c.from_stage.is_not(None),
        TRANSITION.c.seconds_in_from_stage.is_not(None),
        query.in_period(TRANSITION.c.at),
    )
    by_stage = {
        stage: (n, p50, p90)
        for stage, n, p50, p90 in conn.execute(
            percentiles(stays, ["stage"], "seconds", [0.5, 0.9])
        ).all()
    }
    rows: list[list[Any]] = []
    for stage in _in_stage_order(by_stage):
        if stage in by_stage:
            n, p50, p90 = by_stage[stage]
            # The hours for machines; the same in a unit that suits them for people.
            rows.append(
                [stage, n, hours(p50), hours(p90), format_duration(p50), format_duration(p90)]
            )
    return rows


def hours(seconds: float | None) -> float | None:
    """Seconds (from SQL) as hours, to the second (stays under --time-scale last seconds)."""
    return None if seconds is None else round(float(seconds) / 3600, 6)
