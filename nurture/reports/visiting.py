"""Companies visiting now: the organisations whose networks visited the tracked websites in
the last hours (ActiveConversion's screen), with where they are, how many of their visitors
are leads and the best of those leads' scores. Anonymous visitors' organisations are
listed too: a company researching before anyone gave an email is what marketers look for.

Not a period report: it always looks back :data:`WINDOW` from now. One SQL statement: an
aggregate over the visitors seen in that window (``ix_visitor_last_seen_at``), then each listed
company's latest visit for its location.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from nurture.contract.erasure import ERASED_PREFIX
from nurture.reports.base import aware
from nurture.reports.tables import LEAD, VISITOR

WINDOW = timedelta(hours=24)
"""How far back "now" reaches."""
MAX_LISTED = 50


@dataclass(frozen=True)
class VisitingCompany:
    organisation: str
    city: str | None
    """Where its latest visit came from."""
    country: str | None
    """ISO 3166 code (``DE``), as the IP database gives it."""
    visitors: int
    leads: int
    """Leads its visitors were identified as (0: nobody there is known yet)."""
    best_score: int | None
    """The highest score among those leads (None until the read model has one)."""
    last_activity: datetime

    @property
    def location(self) -> str:
        return ", ".join(part for part in (self.city, self.country) if part) or "–"

    def as_json(self) -> dict[str, object]:
        return {**self.__dict__, "last_activity": self.last_activity.isoformat()}


def companies_visiting(
    engine: Engine, now: datetime, window: timedelta = WINDOW, limit: int = MAX_LISTED
) -> list[VisitingCompany]:
    """The organisations seen in ``window`` before ``now``, newest activity first. Visitors
    of an erased lead are left out: the person asked to be forgotten."""
    visitor = VISITOR
    counted = and_(
        visitor.c.last_seen_at >= now - window,
        visitor.c.organisation.is_not(None),
        visitor.c.organisation != "",
        or_(visitor.c.lead_id.is_(None), ~visitor.c.lead_id.startswith(ERASED_PREFIX)),
    )
    last_activity = func.max(visitor.c.last_seen_at).label("last_activity")
    newest = (
        select(
            visitor.c.organisation,
            func.count().label("visitors"),
            func.count(visitor.c.lead_id.distinct()).label("leads"),
            func.max(LEAD.c.score).label("best"),
            last_activity,
        )
        .select_from(visitor.outerjoin(LEAD, LEAD.c.lead_id == visitor.c.lead_id))
        .where(counted)
        .group_by(visitor.c.organisation)
        .order_by(last_activity.desc(), visitor.c.organisation)
        .limit(limit)
        .subquery()
    )
    # Each company's location is its latest visit's: the visitor rows at its last activity
    # (found by the last_seen_at index), the first of them when several share the moment.
    latest = visitor.alias("latest")
    query = (
        select(newest, latest.c.city, latest.c.country)
        .select_from(
            newest.join(
                latest,
                and_(
                    latest.c.organisation == newest.c.organisation,
                    latest.c.last_seen_at == newest.c.last_activity,
                    or_(latest.c.lead_id.is_(None), ~latest.c.lead_id.startswith(ERASED_PREFIX)),
                ),
            )
        )
        .order_by(newest.c.last_activity.desc(), newest.c.organisation, latest.c.visitor_key)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    companies: dict[str, VisitingCompany] = {}
    for row in rows:
        companies.setdefault(
            row.organisation,
            VisitingCompany(
                organisation=row.organisation,
                city=row.city,
                country=row.country,
                visitors=int(row.visitors),
                leads=int(row.leads),
                best_score=None if row.best is None else int(row.best),
                last_activity=aware(row.last_activity),
            ),
        )
    return list(companies.values())
