"""``influence``: deals marketing touched before sales got them against deals it did not (the
comparison of figures 1 and 2 of the Market2Lead paper): how many, how often won, how big,
how fast they closed, and how long their leads stayed in each stage.

A deal is an ``outcome`` row in the period. It is *influenced* when the lead had a nurture
touch actually carried out (``touch.status`` 'sent', or 'task_done': a call, voicemail or
direct-mail task someone did) before the handoff that led to
the outcome (before the outcome itself when that handoff is not on record). The handoff row's
own ``touches_before`` (the emails the workflow had sent when it handed off) settles a tie: an
email whose send completed in the same workflow task as the handoff carries the same timestamp,
and only the workflow knows which came first. The counts are one GROUP BY over the deals;
medians use :func:`percentiles`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Float,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Engine

from nurture.domain.stages import STAGES
from nurture.reports.base import (
    Report,
    ReportQuery,
    ReportTable,
    new_report,
    percentiles,
    ratio,
    report,
    seconds_between,
)
from nurture.reports.funnel import hours
from nurture.reports.tables import HANDOFF, LEAD, OUTCOME, TOUCH, TRANSITION

#: Touches that reached the lead: an email sent, a task someone did. Skipped, suppressed and
#: failed ones did not, nor a task that was only queued (it may have expired or been cancelled).
INFLUENCING = ("sent", "task_done")
#: Group labels by the ``influenced`` flag, in the order the tables list them.
GROUPS = {1: "influenced", 0: "not influenced"}
DAY = 86400.0

NOTES = [
    "A deal is a won or lost outcome recorded in the period; it is marketing-influenced when "
    "the lead was sent at least one nurture email (or a nurture task was carried out) before "
    "it was handed to sales for that deal.",
    "Average deal size is the average amount of the won deals; days to close run from the "
    "lead's creation to the outcome (nearest-rank median, won and lost deals); time in stage "
    "covers each deal's lead up to the outcome.",
]


def deals(query: ReportQuery) -> Select[Any]:
    """One row per outcome in the period: lead, when, result, amount, influenced (1/0) and
    seconds from the lead's creation to the outcome."""
    handed_at = func.coalesce(HANDOFF.c.at, OUTCOME.c.at)
    touched = or_(
        HANDOFF.c.touches_before > 0,
        exists().where(
            TOUCH.c.lead_id == OUTCOME.c.lead_id,
            TOUCH.c.status.in_(INFLUENCING),
            TOUCH.c.at < handed_at,
        ),
    )
    return (
        select(
            OUTCOME.c.lead_id,
            OUTCOME.c.at,
            OUTCOME.c.result,
            OUTCOME.c.amount,
            case((touched, 1), else_=0).label("influenced"),
            cast(seconds_between(OUTCOME.c.at, LEAD.c.created_at), Float).label("to_close"),
        )
        .select_from(
            OUTCOME.outerjoin(
                HANDOFF,
                and_(HANDOFF.c.lead_id == OUTCOME.c.lead_id, HANDOFF.c.number == OUTCOME.c.handoff),
            ).outerjoin(LEAD, LEAD.c.lead_id == OUTCOME.c.lead_id)
        )
        .where(query.in_period(OUTCOME.c.at))
    )


@report("influence", "Marketing influence")
def influence_report(engine: Engine, query: ReportQuery) -> Report:
    deal = deals(query).subquery()
    won = deal.c.result == "won"
    totals = select(
        deal.c.influenced,
        func.count(),
        func.coalesce(func.sum(case((won, 1), else_=0)), 0),
        func.coalesce(func.sum(case((deal.c.result == "lost", 1), else_=0)), 0),
        func.coalesce(func.sum(case((won, deal.c.amount))), 0),
        func.avg(case((won, deal.c.amount))),
    ).group_by(deal.c.influenced)
    to_close = select(deal.c.influenced, deal.c.to_close).where(deal.c.to_close.is_not(None))
    stays = (
        select(
            deal.c.influenced,
            TRANSITION.c.from_stage.label("stage"),
            TRANSITION.c.seconds_in_from_stage.label("seconds"),
        )
        .join(TRANSITION, TRANSITION.c.lead_id == deal.c.lead_id)
        .where(
            TRANSITION.c.at <= deal.c.at,
            TRANSITION.c.from_stage.is_not(None),
            TRANSITION.c.seconds_in_from_stage.is_not(None),
        )
    )
    with engine.connect() as conn:
        counted = {row[0]: row[1:] for row in conn.execute(totals)}
        days = {
            flag: p50
            for flag, _n, p50 in conn.execute(
                percentiles(to_close, ["influenced"], "to_close", [0.5])
            )
        }
        in_stage = {
            (flag, stage): (n, p50)
            for flag, stage, n, p50 in conn.execute(
                percentiles(stays, ["influenced", "stage"], "seconds", [0.5])
            )
        }
    rows: list[list[Any]] = []
    average: dict[int, float | None] = {}
    for flag, group in GROUPS.items():
        n, n_won, n_lost, won_amount, avg_amount = counted.get(flag, (0, 0, 0, 0, None))
        average[flag] = None if avg_amount is None else float(avg_amount)
        rows.append(
            [
                group,
                int(n),
                int(n_won),
                int(n_lost),
                ratio(int(n_won), int(n)),
                round(float(won_amount), 2),
                rounded(average[flag]),
                rounded(None if days.get(flag) is None else float(days[flag]) / DAY),
            ]
        )
    stage_order = {stage: i for i, stage in enumerate(STAGES)}
    stage_rows = [
        [GROUPS[flag], stage, n, hours(p50)]
        for (flag, stage), (n, p50) in sorted(
            in_stage.items(),
            key=lambda item: (-item[0][0], stage_order.get(item[0][1], len(STAGES)), item[0][1]),
        )
    ]
    return new_report(
        "influence",
        query,
        summary={
            "influenced_deals": rows[0][1],
            "not_influenced_deals": rows[1][1],
            "avg_deal_size_ratio": ratio(average[1], average[0]),
        },
        tables=[
            ReportTable(
                name="deals",
                title="Deals closed in the period, influenced by marketing or not",
                columns=[
                    "group",
                    "deals",
                    "won",
                    "lost",
                    "win_rate",
                    "won_amount",
                    "avg_deal_size",
                    "median_days_to_close",
                ],
                rows=rows,
            ),
            ReportTable(
                name="time_in_stage",
                title="Time in stage of those deals' leads",
                columns=["group", "stage", "stays", "median_hours"],
                rows=stage_rows,
            ),
        ],
        notes=NOTES,
    )


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
