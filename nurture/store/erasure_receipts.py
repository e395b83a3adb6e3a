"""Receipts of erasures: when, who asked, why, and how much of each kind was erased.

No personal data: the lead is named by its keyed digest (``nurture.store.salted.lead_digest``),
so whoever knows the lead id finds its receipts and nobody can read the lead id off one.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select


class ErasureReceipt(SQLModel, table=True):
    __tablename__ = "erasurereceipt"

    erasure_id: str = Field(primary_key=True, max_length=64)
    lead_ref: str = Field(index=True, max_length=64)
    requested_at: datetime
    finished_at: datetime
    requested_by: str = Field(max_length=200)
    reason: str | None = Field(default=None, max_length=500)
    erased: str = "{}"
    """JSON: how many of each kind were erased (rows per table, keys, addresses, requests)."""

    def counts(self) -> dict[str, int]:
        return dict(json.loads(self.erased))


def keep_receipt(engine: Engine, receipt: ErasureReceipt) -> ErasureReceipt:
    """Store ``receipt`` once (by its erasure id); return the stored one."""
    with Session(engine) as session:
        stored = session.get(ErasureReceipt, receipt.erasure_id)
        if stored is None:
            session.add(receipt)
            try:
                session.commit()
            except IntegrityError:  # the same step retried at the same moment
                session.rollback()
            stored = session.get(ErasureReceipt, receipt.erasure_id)
        assert stored is not None
        session.expunge(stored)
        return stored


def receipts_for(engine: Engine, lead_ref: str) -> list[ErasureReceipt]:
    """Every erasure of the lead with this digest, newest first."""
    with Session(engine) as session:
        query = select(ErasureReceipt).where(ErasureReceipt.lead_ref == lead_ref)
        rows = session.exec(query.order_by(col(ErasureReceipt.finished_at).desc())).all()
        for row in rows:
            session.expunge(row)
        return list(rows)
