"""Campaigns and what they cost, as marketers enter them (CLI ``nurture campaign``, HTTP
``/api/campaigns``); the ``cost`` report divides these costs by the leads, opportunities and
deals each campaign brought.

A cost covers a period [period_start, period_end) of whole days, or a calendar month
("2026-11"). Recording the same campaign and period again replaces the amount, so a cost can be
corrected or sent twice without counting twice. Recording a cost for a campaign nobody added
yet adds it: the name is what leads carry in their ``campaign`` field.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from nurture.store.clock import utcnow
from nurture.store.read_model import Campaign, CampaignCost

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
"""A calendar month as ``2026-11``; what the HTTP schema states, and what :func:`month_period`
takes (after stripping spaces)."""
CURRENCY_PATTERN = r"^\s*[A-Za-z]{3}\s*$"
"""Three letters (ISO 4217), stored in capitals; spaces around are dropped."""
CURRENCY = re.compile(r"[A-Z]{3}")
FIRST_DAY = date(1970, 1, 1)
END_OF_DAYS = date(2200, 1, 1)
"""Costs cover days from :data:`FIRST_DAY` up to this one (exclusive): the dates reports cover."""
NAME_MAX = 200
NOTE_MAX = 2000
"""The longest note on a cost or description of a campaign, in characters."""
# The largest amount of money Nurture records (a campaign's cost, a deal's value): far beyond any
# real one, and small enough that adding up millions of them stays a finite float.
MAX_AMOUNT = 1e12


class CampaignError(ValueError):
    """The campaign or cost cannot be recorded as given; the message says what to change."""


class CampaignSummary(BaseModel):
    name: str
    channel: str | None
    description: str
    created_at: datetime
    costs: int
    total_cost: float | None
    """None only when amounts entered before they were bounded add up beyond a float."""
    currencies: list[str]


class RecordedCost(BaseModel):
    campaign: str
    period_start: date
    period_end: date
    amount: float
    currency: str
    note: str
    replaced: bool
    """The same campaign and period had a cost already: its amount was replaced."""
    previous_amount: float | None = None
    campaign_created: bool = False
    overlapping: list[str] = []
    """Other cost periods of the campaign overlapping this one: the cost report adds them."""


def _name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise CampaignError("a campaign needs a name")
    if len(cleaned) > NAME_MAX:
        raise CampaignError(f"a campaign name has at most {NAME_MAX} characters")
    return cleaned


def month_period(month: str) -> tuple[date, date]:
    """``"2026-11"`` → (2026-11-01, 2026-12-01)."""
    if re.fullmatch(MONTH_PATTERN, month.strip()) is None:
        raise CampaignError(f"{month!r} is not a month; write it as 2026-11")
    year, number = (int(part) for part in month.strip().split("-"))
    if not FIRST_DAY.year <= year < END_OF_DAYS.year:
        raise CampaignError(_outside(month))
    start = date(year, number, 1)
    end = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return start, end


def _outside(period: str) -> str:
    return (
        f"{period} is outside the dates costs cover: from {FIRST_DAY} until {END_OF_DAYS} "
        "(the dates reports cover)"
    )


def cost_period(
    period_start: date | None = None, period_end: date | None = None, month: str | None = None
) -> tuple[date, date]:
    """The period a cost covers: a month, or a start and an (exclusive) end."""
    if month is not None:
        if period_start is not None or period_end is not None:
            raise CampaignError("give either a month or a start and an end, not both")
        return month_period(month)
    if period_start is None or period_end is None:
        raise CampaignError(
            "a cost needs its period: a month (2026-11) or a start and an end (end exclusive)"
        )
    if period_start < FIRST_DAY or period_end > END_OF_DAYS:
        raise CampaignError(_outside(f"{period_start} to {period_end}"))
    if period_end <= period_start:
        raise CampaignError(
            f"the period ends ({period_end}) on or before it starts ({period_start}); the end "
            "is exclusive: a cost for November 2026 runs from 2026-11-01 until 2026-12-01"
        )
    return period_start, period_end


def save_campaign(
    engine: Engine, name: str, channel: str | None = None, description: str | None = None
) -> tuple[Campaign, bool]:
    """Add a campaign or update it (only the fields given change); True when it was added."""
    name = _name(name)
    if channel is not None and len(channel.strip()) > 64:
        raise CampaignError("a channel has at most 64 characters")
    if description is not None and len(description.strip()) > NOTE_MAX:
        raise CampaignError(f"a description has at most {NOTE_MAX} characters")
    for attempt in (1, 2):
        with Session(engine) as session:
            row = session.get(Campaign, name)
            created = row is None
            if row is None:
                row = Campaign(name=name)
            if channel is not None:
                row.channel = channel.strip() or None
            if description is not None:
                row.description = description.strip()
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # added by someone else meanwhile: update theirs
                if attempt == 2:
                    raise
                continue
            session.refresh(row)
            return row, created
    raise AssertionError("unreachable")


def record_cost(
    engine: Engine,
    campaign: str,
    amount: float,
    *,
    period_start: date | None = None,
    period_end: date | None = None,
    month: str | None = None,
    currency: str = "USD",
    note: str = "",
) -> RecordedCost:
    """Record what ``campaign`` cost over a period; the same period again replaces it."""
    name = _name(campaign)
    start, end = cost_period(period_start, period_end, month)
    if not math.isfinite(amount) or not 0 <= amount <= MAX_AMOUNT:
        raise CampaignError(f"a cost is an amount from 0 to {MAX_AMOUNT:,.0f}, not {amount}")
    if len(note.strip()) > NOTE_MAX:
        raise CampaignError(f"a note has at most {NOTE_MAX} characters")
    code = currency.strip().upper()
    if not CURRENCY.fullmatch(code):
        raise CampaignError(f"{currency!r} is not a currency code; use three letters like USD")
    for attempt in (1, 2):
        with Session(engine) as session:
            campaign_created = session.get(Campaign, name) is None
            if campaign_created:
                session.add(Campaign(name=name))
            row = session.scalars(
                select(CampaignCost).where(
                    col(CampaignCost.campaign) == name,
                    col(CampaignCost.period_start) == start,
                    col(CampaignCost.period_end) == end,
                )
            ).first()
            previous = None if row is None else row.amount
            if row is None:
                row = CampaignCost(campaign=name, period_start=start, period_end=end, amount=0)
            row.amount = float(amount)
            row.currency = code
            row.note = note.strip()
            row.recorded_at = utcnow()
            session.add(row)
            overlapping = session.scalars(
                select(CampaignCost).where(
                    col(CampaignCost.campaign) == name,
                    col(CampaignCost.period_start) < end,
                    col(CampaignCost.period_end) > start,
                    ~(
                        (col(CampaignCost.period_start) == start)
                        & (col(CampaignCost.period_end) == end)
                    ),
                )
            ).all()
            try:
                session.commit()
            except IntegrityError:  # the same cost recorded at the same moment: replace it
                if attempt == 2:
                    raise
                continue
            return RecordedCost(
                campaign=name,
                period_start=start,
                period_end=end,
                amount=float(amount),
                currency=code,
                note=note.strip(),
                replaced=previous is not None,
                previous_amount=previous,
                campaign_created=campaign_created,
                overlapping=[f"{o.period_start} until {o.period_end}" for o in overlapping],
            )
    raise AssertionError("unreachable")


def list_campaigns(engine: Engine, name: str | None = None) -> list[CampaignSummary]:
    """Every campaign (or the one named) with its number of cost entries and their total over
    all periods."""
    costs = (
        select(
            col(CampaignCost.campaign).label("campaign"),
            func.count().label("costs"),
            func.sum(col(CampaignCost.amount)).label("total"),
        )
        .group_by(col(CampaignCost.campaign))
        .subquery()
    )
    currencies = select(col(CampaignCost.campaign), col(CampaignCost.currency)).distinct()
    statement = select(Campaign, costs.c.costs, costs.c.total).outerjoin(
        costs, costs.c.campaign == col(Campaign.name)
    )
    if name is not None:
        statement = statement.where(col(Campaign.name) == name.strip())
        currencies = currencies.where(col(CampaignCost.campaign) == name.strip())
    with Session(engine) as session:
        seen: dict[str, list[str]] = {}
        for campaign, code in session.execute(currencies.order_by(col(CampaignCost.currency))):
            seen.setdefault(campaign, []).append(code)
        found = [
            CampaignSummary(
                name=row.name,
                channel=row.channel,
                description=row.description,
                created_at=row.created_at,
                costs=int(n or 0),
                total_cost=_finite(round(float(total or 0), 2)),
                currencies=seen.get(row.name, []),
            )
            for row, n, total in session.execute(statement)
        ]
    return sorted(found, key=lambda c: c.name)  # the same order whatever the collation


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summary_of(engine: Engine, name: str) -> CampaignSummary | None:
    found = list_campaigns(engine, name)
    return found[0] if found else None
