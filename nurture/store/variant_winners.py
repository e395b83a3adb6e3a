"""A/B tests in the engine database: what each variant of a step achieved so far, and the
winners winner rules chose (one per step, for good: the first worker to decide records it).

The rules in force carry the decided winners (``nurture.config.rules_source``), so a decision
reaches every lead through the rules it already reads before each touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from nurture.domain.rules import DecidedWinner, variant_key
from nurture.store.db import WebhookEvent
from nurture.store.read_model import TouchRecord


class VariantWinnerRecord(SQLModel, table=True):
    __tablename__ = "variantwinner"

    cadence: str = Field(primary_key=True, max_length=64)
    step: str = Field(primary_key=True, max_length=64)
    variant: str = Field(max_length=32)
    because: str = Field(max_length=500)
    decided_at: datetime


@dataclass(frozen=True)
class VariantResult:
    """One variant's emails sent so far, and how many of them were opened (by a person) and
    clicked (unique per email)."""

    sends: int
    opens: int
    clicks: int


def decided_winners(engine: Engine) -> dict[str, DecidedWinner]:
    """Every winner decided, by ``cadence/step``."""
    with Session(engine) as session:
        rows = session.exec(select(VariantWinnerRecord)).all()
    return {
        variant_key(row.cadence, row.step): DecidedWinner(
            variant=row.variant, because=row.because, decided_at=row.decided_at
        )
        for row in rows
    }


def record_winner(engine: Engine, cadence: str, step: str, winner: DecidedWinner) -> bool:
    """Record the winner of ``cadence/step`` unless one is; False when another process did."""
    with Session(engine) as session:
        if session.get(VariantWinnerRecord, (cadence, step)) is not None:
            return False
        session.add(
            VariantWinnerRecord(
                cadence=cadence,
                step=step,
                variant=winner.variant,
                because=winner.because[:500],
                decided_at=winner.decided_at,
            )
        )
        try:
            session.commit()
        except IntegrityError:
            return False
    return True


def variant_results(engine: Engine, cadence: str, step: str) -> dict[str, VariantResult]:
    """What each variant of ``cadence/step`` achieved, over every cycle and all time: the
    step's sent touches, each looked up among the events by its key (indexed)."""
    events = WebhookEvent.__table__.c  # type: ignore[attr-defined]

    def had(engagement: str) -> Any:
        return case(
            (
                exists().where(
                    events.touch_key == TouchRecord.key, events.engagement == engagement
                ),
                1,
            ),
            else_=0,
        )

    query = (
        select(
            col(TouchRecord.variant), func.count(), func.sum(had("open")), func.sum(had("click"))
        )
        .where(
            TouchRecord.cadence == cadence,
            TouchRecord.step == step,
            TouchRecord.status == "sent",
            col(TouchRecord.variant).is_not(None),
        )
        .group_by(col(TouchRecord.variant))
    )
    with Session(engine) as session:
        rows = session.exec(query).all()
    return {
        str(name): VariantResult(int(sends), int(opens or 0), int(clicks or 0))
        for name, sends, opens, clicks in rows
    }
