"""Touches held because their email could not be rendered (a template the rules version
cannot render), not sent or skipped since: what marketers must fix, for the dashboard.

The lead workflow writes a touch row ``<touch key>:held`` with the reason when it holds a
touch, and the touch's own row once it is sent or skipped; a held row without its own row is
still blocked. Not a period report: a blocked touch matters however old it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import Engine

from nurture.contract.ledger import HELD_SUFFIX
from nurture.reports.base import aware
from nurture.reports.tables import LEAD, TOUCH

MAX_LISTED = 50


@dataclass(frozen=True)
class HeldTouch:
    lead_id: str
    cadence: str
    step: str
    cycle: int
    since: datetime
    reason: str
    stage: str | None = None
    owner: str | None = None


def held_touches(engine: Engine, limit: int | None = MAX_LISTED) -> tuple[int, list[HeldTouch]]:
    """How many touches are held now, and the oldest ``limit`` of them (all with None)."""
    touch, outcome = TOUCH, TOUCH.alias("outcome")
    own_key = func.substr(touch.c.key, 1, func.length(touch.c.key) - len(HELD_SUFFIX))
    still_held = and_(
        touch.c.status == "held",
        ~exists().where(and_(outcome.c.key == own_key, outcome.c.lead_id == touch.c.lead_id)),
    )
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(touch).where(still_held)).scalar()
        rows = conn.execute(
            select(touch, LEAD.c.stage, LEAD.c.owner)
            .select_from(touch.outerjoin(LEAD, LEAD.c.lead_id == touch.c.lead_id))
            .where(still_held)
            .order_by(touch.c.at, touch.c.lead_id)
            .limit(limit)
        ).all()
    return int(total or 0), [
        HeldTouch(
            lead_id=row.lead_id,
            cadence=row.cadence,
            step=row.step,
            cycle=row.cycle,
            since=aware(row.at),
            reason=row.detail or "the email could not be rendered",
            stage=row.stage,
            owner=row.owner,
        )
        for row in rows
    ]
