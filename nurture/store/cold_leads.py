"""Leads that went cold: in a cold stage, with no behaviour event and no stage change since a
cutoff, not yet erased (``nurture.contract.retention``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nurture.contract.erasure import ERASED_PREFIX
from nurture.store.read_model import LeadEventRecord, LeadRecord


def cold_leads(engine: Engine, cutoff: datetime, limit: int, stages: tuple[str, ...]) -> list[str]:
    """Up to ``limit`` ids of leads in ``stages`` whose last event, stage change and creation
    are all before ``cutoff``, oldest first."""
    lead, event = LeadRecord.__table__, LeadEventRecord.__table__  # type: ignore[attr-defined]
    last_move = sa.func.coalesce(lead.c.stage_since, lead.c.created_at)
    recent_event = sa.exists().where(event.c.lead_id == lead.c.lead_id, event.c.at >= cutoff)
    query = (
        sa.select(lead.c.lead_id)
        .where(
            lead.c.stage.in_(stages),
            last_move < cutoff,
            ~recent_event,
            ~lead.c.lead_id.startswith(ERASED_PREFIX),
        )
        .order_by(last_move, lead.c.lead_id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())
