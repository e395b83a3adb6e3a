"""Finding leads by what a person types (their address), in the read model."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from nurture.contract.erasure import ERASED_PREFIX
from nurture.store.read_model import LeadRecord


def leads_holding(engine: Engine, email: str) -> list[LeadRecord]:
    """The leads whose address is ``email`` (case aside), most recently active first."""
    address = email.strip().lower()
    with Session(engine) as session:
        return list(
            session.exec(
                select(LeadRecord)
                .where(
                    func.lower(col(LeadRecord.email)) == address,
                    ~col(LeadRecord.lead_id).startswith(ERASED_PREFIX),
                )
                .order_by(col(LeadRecord.updated_at).desc(), col(LeadRecord.lead_id))
            ).all()
        )
