"""Record stage transitions in the read model, once each."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from temporalio import activity

from nurture.db import StageTransition
from nurture.messages import RECORD_TRANSITION, TransitionRecord


class RecordActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name=RECORD_TRANSITION)
    def record_transition(self, record: TransitionRecord) -> None:
        with Session(self.engine) as session:
            if session.get(StageTransition, record.key) is not None:
                return
            session.add(StageTransition(**record.model_dump(exclude={"kind"})))
            try:
                session.commit()
            except IntegrityError:  # a concurrent retry got there first: same row, done
                session.rollback()
