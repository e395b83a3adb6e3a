"""Receipts of erasures: when, who asked, why, and how much of each kind was erased.

No personal data: the lead is named by its keyed digest (``nurture.store.salted.lead_digest``),
so whoever knows the lead id finds its receipts and nobody can read the lead id off one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, col, select

from nurture.contract.erasure import ErasureReceiptFields


class ErasureReceipt(ErasureReceiptFields, table=True):
    __tablename__ = "erasurereceipt"

    erasure_id: str = Field(primary_key=True, max_length=64)
    lead_ref: str = Field(index=True, max_length=64)
    requested_at: datetime
    finished_at: datetime
    requested_by: str = Field(max_length=200)
    reason: str | None = Field(default=None, max_length=500)
    erased: dict[str, int] = Field(default_factory=dict, sa_type=JSON)


def keep_receipt(engine: Engine, receipt: ErasureReceiptFields) -> ErasureReceiptFields:
    """Store ``receipt`` once (by its erasure id); return what is stored."""
    with Session(engine) as session:
        stored = session.get(ErasureReceipt, receipt.erasure_id)
        if stored is None:
            session.add(ErasureReceipt.model_validate(receipt.model_dump()))
            try:
                session.commit()
            except IntegrityError:  # the same step retried at the same moment
                session.rollback()
            stored = session.get(ErasureReceipt, receipt.erasure_id)
        assert stored is not None
        return ErasureReceiptFields.model_validate(stored.model_dump())


def receipts_for(engine: Engine, lead_ref: str) -> list[ErasureReceiptFields]:
    """Every erasure of the lead with this digest, newest first."""
    with Session(engine) as session:
        query = select(ErasureReceipt).where(ErasureReceipt.lead_ref == lead_ref)
        rows = session.exec(query.order_by(col(ErasureReceipt.finished_at).desc())).all()
        return [ErasureReceiptFields.model_validate(row.model_dump()) for row in rows]
