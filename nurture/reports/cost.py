"""``cost``: what each campaign cost per lead, per opportunity and per deal.

The leads are the ones a campaign captured in the period (``lead.created_at``), followed to
today: an opportunity is such a lead sales accepted (a handoff reached accepted, won or lost),
a deal such a lead won. Costs are prorated by how many days of each cost period fall in the
report period (an open bound takes the whole cost period).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from nurture.reports.base import (
    Report,
    ReportQuery,
    ReportTable,
    aware,
    new_report,
    report,
)
from nurture.store.read_model import CampaignCost, DealOutcome, HandoffRecord, LeadRecord

NO_CAMPAIGN = "(none)"
WORKED = ("accepted", "won", "lost")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def prorated(cost: CampaignCost, since: datetime | None, until: datetime | None) -> float:
    """The part of ``cost`` falling in [since, until), in proportion to the time overlapping
    (days, fractions of a day when the period has times)."""
    start, end = _midnight(cost.period_start), _midnight(cost.period_end)
    if end <= start:
        return 0.0
    lo = max(start, aware(since)) if since else start
    hi = min(end, aware(until)) if until else end
    if hi <= lo:
        return 0.0
    return cost.amount * (hi - lo).total_seconds() / (end - start).total_seconds()


def _costs(engine: Engine, query: ReportQuery) -> tuple[dict[str, float], set[str]]:
    """Prorated cost per campaign (few rows: prorated here) and the currencies seen."""
    statement = select(CampaignCost)
    if query.since is not None:
        statement = statement.where(
            col(CampaignCost.period_end) > aware(query.since).astimezone(UTC).date()
        )
    if query.until is not None:
        statement = statement.where(
            col(CampaignCost.period_start) <= aware(query.until).astimezone(UTC).date()
        )
    totals: dict[str, float] = defaultdict(float)
    currencies: set[str] = set()
    with Session(engine) as session:
        for cost in session.scalars(statement):
            if _overlaps(cost, query):  # a zero share still lists the campaign
                totals[cost.campaign] += prorated(cost, query.since, query.until)
                currencies.add(cost.currency)
    return totals, currencies


def _overlaps(cost: CampaignCost, query: ReportQuery) -> bool:
    start, end = _midnight(cost.period_start), _midnight(cost.period_end)
    return (query.since is None or end > aware(query.since)) and (
        query.until is None or start < aware(query.until)
    )


def _funnel(engine: Engine, query: ReportQuery) -> dict[str, dict[str, Any]]:
    """Leads, opportunities, deals and won amount per capturing campaign, in one GROUP BY."""
    worked = (
        select(col(HandoffRecord.lead_id))
        .where(col(HandoffRecord.status).in_(WORKED))
        .group_by(col(HandoffRecord.lead_id))
        .subquery()
    )
    won = (
        select(
            col(DealOutcome.lead_id),
            func.sum(func.coalesce(col(DealOutcome.amount), 0.0)).label("amount"),
        )
        .where(col(DealOutcome.result) == "won")
        .group_by(col(DealOutcome.lead_id))
        .subquery()
    )
    leads = (
        select(
            func.coalesce(col(LeadRecord.campaign), NO_CAMPAIGN).label("campaign"),
            worked.c.lead_id.label("worked"),
            won.c.lead_id.label("won"),
            won.c.amount.label("amount"),
        )
        .select_from(LeadRecord)
        .outerjoin(worked, worked.c.lead_id == col(LeadRecord.lead_id))
        .outerjoin(won, won.c.lead_id == col(LeadRecord.lead_id))
        .where(query.in_period(LeadRecord.created_at))
        .subquery()
    )
    statement = select(
        leads.c.campaign,
        func.count().label("leads"),
        func.count(leads.c.worked).label("opportunities"),
        func.count(leads.c.won).label("deals"),
        func.coalesce(func.sum(leads.c.amount), 0.0).label("won_amount"),
    ).group_by(leads.c.campaign)
    with engine.connect() as conn:
        return {str(r["campaign"]): dict(r) for r in conn.execute(statement).mappings()}


def _per(cost: float | None, count: int) -> float | None:
    """Cost per unit; None when the cost is unknown (none entered) or there is nothing to
    divide by: unknown is not free."""
    return round(cost / count, 2) if cost is not None and count else None


@report("cost", "Cost per lead, opportunity and deal")
def cost_report(engine: Engine, query: ReportQuery) -> Report:
    costs, currencies = _costs(engine, query)
    funnel = _funnel(engine, query)
    names = sorted((set(costs) | set(funnel)) - {NO_CAMPAIGN})
    if NO_CAMPAIGN in funnel:
        names.append(NO_CAMPAIGN)  # last: leads nobody paid for
    rows: list[list[Any]] = []
    totals = {"cost": 0.0, "leads": 0, "opportunities": 0, "deals": 0, "won_amount": 0.0}
    unknown: list[str] = []
    for name in names:
        # Leads of no campaign cost nothing; a campaign with no cost entered for the period
        # has an unknown cost, shown as such rather than as free.
        cost: float | None = 0.0 if name == NO_CAMPAIGN else costs.get(name)
        if cost is None:
            unknown.append(name)
        f = funnel.get(name, {})
        leads, opportunities, deals = (
            int(f.get("leads", 0)),
            int(f.get("opportunities", 0)),
            int(f.get("deals", 0)),
        )
        won_amount = float(f.get("won_amount", 0.0) or 0.0)
        rows.append(
            [
                name,
                None if cost is None else round(cost, 2),
                leads,
                opportunities,
                deals,
                round(won_amount, 2),
                _per(cost, leads),
                _per(cost, opportunities),
                _per(cost, deals),
            ]
        )
        totals["cost"] += cost or 0.0
        totals["leads"] += leads
        totals["opportunities"] += opportunities
        totals["deals"] += deals
        totals["won_amount"] += won_amount
    total_cost = float(totals["cost"])
    notes = [
        "Leads are those each campaign captured in the period (the lead's first campaign), "
        "followed to today: opportunities (handed off and accepted by sales) and deals (won) "
        "of a recent period are still coming in.",
        "Costs are prorated by the days of each cost period inside the report period; an open "
        "bound takes the whole cost period.",
    ]
    # With no cost entered at all nothing is known about cost per lead: not zero.
    known_cost = total_cost if costs else None
    if unknown:
        notes.append(
            f"No cost is entered for {', '.join(unknown)} in the period: its cost per lead, "
            "opportunity and deal is unknown, and the totals count its leads at no cost."
        )
    if len(currencies) > 1:
        notes.append(
            f"Costs are recorded in several currencies ({', '.join(sorted(currencies))}) and "
            "are added as they are, without conversion."
        )
    return new_report(
        "cost",
        query,
        summary={
            "cost": round(total_cost, 2),
            "leads": totals["leads"],
            "opportunities": totals["opportunities"],
            "deals": totals["deals"],
            "won_amount": round(float(totals["won_amount"]), 2),
            "currency": next(iter(currencies)) if len(currencies) == 1 else None,
            "cost_per_lead": _per(known_cost, int(totals["leads"])),
            "cost_per_opportunity": _per(known_cost, int(totals["opportunities"])),
            "cost_per_deal": _per(known_cost, int(totals["deals"])),
        },
        tables=[
            ReportTable(
                name="campaigns",
                title="Cost per campaign",
                columns=[
                    "campaign",
                    "cost",
                    "leads",
                    "opportunities",
                    "deals",
                    "won_amount",
                    "cost_per_lead",
                    "cost_per_opportunity",
                    "cost_per_deal",
                ],
                rows=rows,
            )
        ],
        notes=notes,
    )
