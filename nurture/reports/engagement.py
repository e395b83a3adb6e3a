"""``engagement``: how each cadence step performs — for every cadence, cycle and step, what
its touches became: sent, delivered, bounced, opened (people and privacy proxies apart),
clicked, unsubscribed, reported as spam; for call, voicemail and direct-mail steps the tasks
queued, done and their outcomes; and how many of the touched leads were handed to sales
within 7 and 30 days after the touch. An A/B-tested step has a row per variant, and the
``ab_tests`` table compares its variants on clicks and opens over every cycle
(``nurture.domain.variant_stats``): the leader and its probability of being the best, or "not
enough evidence yet".

A touch is a ``touch`` row of the period (its ``at``, when it was sent or queued). Each
SendGrid event names the touch it is about (``webhookevent.touch_key``, from the touch's
``touch_id`` custom arg) and what it counts as (``webhookevent.engagement``, classified when
it arrived: ``nurture.domain.engagement``): the figures are *unique* per touch (a touch opened
five times is one open). An unsubscribe is the lead's own ``unsubscribe:<touch>`` event,
whichever way it came (our link or SendGrid's). One GROUP BY over the touches of the period,
each joined to one row of its events' flags and to its lead's first handoff after it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.engine import Engine

from nurture.domain.rules import Metric
from nurture.domain.variant_stats import DEFAULT_MIN_PROBABILITY, MIN_SENDS_EACH, Arm, compare
from nurture.reports.base import (
    Report,
    ReportQuery,
    ReportTable,
    new_report,
    ratio,
    report,
    seconds_between,
)
from nurture.reports.tables import HANDOFF, LEAD_EVENT, SALES_TASK, TOUCH, WEBHOOK_EVENT

METRICS: tuple[Metric, ...] = ("click", "open")

DAY = 86_400
HANDOFF_WINDOWS = (7, 30)
"""Days after a touch within which a handoff of its lead is counted for it."""

COLUMNS = [
    "cadence",
    "cycle",
    "step",
    "variant",
    "channel",
    "sent",
    "delivered",
    "bounced",
    "unique_opens",
    "machine_opens",
    "unique_clicks",
    "click_to_open",
    "unsubscribes",
    "spam_reports",
    "tasks",
    "tasks_done",
    "task_outcomes",
    "handed_off_7d",
    "handed_off_30d",
]

AB_COLUMNS = ["cadence", "step", "metric", "variants", "leader", "probability", "verdict"]

NOTES = [
    "One row per cadence, cycle and step (and variant of an A/B test); a touch counts in the "
    "period it was sent (or its task queued). Opens, clicks and the rest are unique per touch.",
    "A/B tests: each variant's click (or open) rate per email sent, over every cycle of the "
    "period; the probability that the leader is truly the best is Bayesian (Beta posteriors "
    f"from a uniform prior). A winner is named from {DEFAULT_MIN_PROBABILITY * 100:.0f} % with at "
    f"least {MIN_SENDS_EACH} sends of each variant; short of that: not enough evidence yet.",
    "Machine opens are opens SendGrid marks as made by a privacy proxy (Apple Mail Privacy "
    "Protection opens every email it receives): counted apart, never as a person's open. "
    "Click-to-open is unique clicks over unique (people's) opens.",
    "Bounced counts bounces and drops (a 'blocked' bounce is temporary and not counted). "
    "Replies are not known: SendGrid reports no replies.",
    "Handed off within 7 and 30 days: touches whose lead was handed to sales that long after "
    "the touch at most (the lead's first handoff after it).",
]

_FLAGS = ("delivered", "bounced", "open", "machine_open", "click", "spamreport")


def _flag(name: str) -> Any:
    return func.max(case((WEBHOOK_EVENT.c.engagement == name, 1), else_=0)).label(name)


def _counted(condition: ColumnElement[bool]) -> Any:
    return func.sum(case((condition, 1), else_=0))


@report("engagement", "Engagement per cadence step")
def engagement_report(engine: Engine, query: ReportQuery) -> Report:
    events = (
        select(WEBHOOK_EVENT.c.touch_key, *(_flag(name) for name in _FLAGS))
        .where(WEBHOOK_EVENT.c.touch_key.is_not(None), WEBHOOK_EVENT.c.engagement.is_not(None))
        .group_by(WEBHOOK_EVENT.c.touch_key)
        .subquery("events")
    )
    first_handoff = (
        select(func.min(HANDOFF.c.at))
        .where(HANDOFF.c.lead_id == TOUCH.c.lead_id, HANDOFF.c.at >= TOUCH.c.at)
        .scalar_subquery()
    )
    unsubscribe_key = TOUCH.c.lead_id + literal(":ev:unsubscribe:") + TOUCH.c.key
    unsubscribed = LEAD_EVENT.alias("unsubscribed")
    touches = (
        select(
            TOUCH.c.cadence,
            TOUCH.c.cycle,
            TOUCH.c.step,
            TOUCH.c.variant,
            TOUCH.c.channel,
            TOUCH.c.status,
            TOUCH.c.at,
            *(func.coalesce(events.c[name], 0).label(name) for name in _FLAGS),
            case((unsubscribed.c.key.is_not(None), 1), else_=0).label("unsubscribed"),
            seconds_between(first_handoff, TOUCH.c.at).label("to_handoff"),
        )
        .select_from(
            TOUCH.outerjoin(events, events.c.touch_key == TOUCH.c.key).outerjoin(
                unsubscribed, unsubscribed.c.key == unsubscribe_key
            )
        )
        .where(*_in_scope(query), TOUCH.c.status.in_(("sent", "task", "task_done")))
        .subquery("touches")
    )
    t = touches.c
    sent = t.status == "sent"
    grouped = (
        select(
            t.cadence,
            t.cycle,
            t.step,
            t.variant,
            func.min(t.channel).label("channel"),
            _counted(sent).label("sent"),
            *(_counted(and_(sent, t[name] == 1)).label(name) for name in _FLAGS),
            _counted(and_(sent, t.unsubscribed == 1)).label("unsubscribes"),
            _counted(t.status == "task").label("tasks"),
            _counted(t.status == "task_done").label("tasks_done"),
            *(
                _counted(and_(t.status != "task_done", t.to_handoff <= days * DAY)).label(
                    f"handed_off_{days}d"
                )
                for days in HANDOFF_WINDOWS
            ),
        )
        .group_by(t.cadence, t.cycle, t.step, t.variant)
        # The steps in cadence order (a step's variants together: the time its first went).
        .order_by(
            t.cadence,
            t.cycle,
            func.min(func.min(t.at)).over(partition_by=(t.cadence, t.cycle, t.step)),
            t.step,
            t.variant,
        )
    )
    with engine.connect() as conn:
        rows = conn.execute(grouped).mappings().all()
        outcomes = _task_outcomes(conn, query)
    table_rows = [
        [
            r["cadence"],
            r["cycle"],
            r["step"],
            r["variant"],
            r["channel"],
            r["sent"],
            r["delivered"],
            r["bounced"],
            r["open"],
            r["machine_open"],
            r["click"],
            ratio(r["click"], r["open"]),
            r["unsubscribes"],
            r["spamreport"],
            r["tasks"],
            r["tasks_done"],
            _outcome_text(outcomes.get((r["cadence"], r["cycle"], r["step"]), {})),
            r["handed_off_7d"],
            r["handed_off_30d"],
        ]
        for r in rows
    ]
    sent_total = sum(r["sent"] for r in rows)
    opens = sum(r["open"] for r in rows)
    clicks = sum(r["click"] for r in rows)
    summary = {
        "sent": sent_total,
        "delivered_rate": ratio(sum(r["delivered"] for r in rows), sent_total),
        "open_rate": ratio(opens, sent_total),
        "click_rate": ratio(clicks, sent_total),
        "click_to_open": ratio(clicks, opens),
        "machine_opens": sum(r["machine_open"] for r in rows),
        "unsubscribe_rate": ratio(sum(r["unsubscribes"] for r in rows), sent_total),
        "tasks_done": sum(r["tasks_done"] for r in rows),
    }
    if query.cadence is not None:
        summary = {"cadence": query.cadence, **summary}
    steps = ReportTable(name="steps", title="Engagement per step", columns=COLUMNS, rows=table_rows)
    tests = ReportTable(
        name="ab_tests", title="A/B tests", columns=AB_COLUMNS, rows=_ab_tests(rows)
    )
    return new_report("engagement", query, summary=summary, tables=[steps, tests], notes=NOTES)


def _ab_tests(rows: Sequence[Any]) -> list[list[Any]]:
    """Each A/B-tested step's variants compared on clicks and on opens (cycles added up)."""
    tested: dict[tuple[str, str], dict[str, Counter[str]]] = {}
    for r in rows:
        if r["variant"] is not None:
            counts = tested.setdefault((r["cadence"], r["step"]), {})
            counts.setdefault(r["variant"], Counter()).update(
                {"sent": r["sent"], "click": r["click"], "open": r["open"]}
            )
    found = []
    for (cadence, step), variants in tested.items():
        if len(variants) < 2:
            continue  # one variant sent in the period: nothing to compare it with
        for metric in METRICS:
            arms = [Arm(name, c["sent"], c[metric]) for name, c in sorted(variants.items())]
            comparison = compare(arms, metric)
            shown = ", ".join(
                f"{arm.name} {arm.successes:,} of {arm.sends:,} ({arm.rate * 100:.1f} %)"
                for arm in arms
            )
            found.append(
                [
                    cadence,
                    step,
                    metric,
                    shown,
                    comparison.leader,
                    round(comparison.probability, 4),
                    comparison.sentence,
                ]
            )
    return found


def _in_scope(query: ReportQuery) -> list[ColumnElement[bool]]:
    """The touches the report covers: of the period, of the one cadence when asked."""
    scope = [query.in_period(TOUCH.c.at)]
    if query.cadence is not None:
        scope.append(TOUCH.c.cadence == query.cadence)
    return scope


def _task_outcomes(conn: Any, query: ReportQuery) -> dict[tuple[str, int, str], dict[str, int]]:
    """Per cadence, cycle and step: how many of the tasks queued in the period were done with
    each outcome (the inside-sales queue keeps the outcome)."""
    rows = conn.execute(
        select(TOUCH.c.cadence, TOUCH.c.cycle, TOUCH.c.step, SALES_TASK.c.outcome, func.count())
        .select_from(TOUCH.join(SALES_TASK, SALES_TASK.c.key == TOUCH.c.key))
        .where(*_in_scope(query), TOUCH.c.status == "task", SALES_TASK.c.outcome.is_not(None))
        .group_by(TOUCH.c.cadence, TOUCH.c.cycle, TOUCH.c.step, SALES_TASK.c.outcome)
    ).all()
    found: dict[tuple[str, int, str], dict[str, int]] = {}
    for cadence, cycle, step, outcome, count in rows:
        found.setdefault((cadence, cycle, step), {})[outcome] = count
    return found


def _outcome_text(outcomes: dict[str, int]) -> str | None:
    """``connected 3, no_answer 2``: most frequent first."""
    if not outcomes:
        return None
    ordered = sorted(outcomes.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{outcome} {count}" for outcome, count in ordered)
