"""Round-robin turns shared across leads and workers, and assignments remembered per key."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from temporalio import activity

from nurture.db import RepAssignment, RoundRobinTurn
from nurture.messages import ASSIGN_REP, AssignRequest
from nurture.routing import pick_rep


class RoutingActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name=ASSIGN_REP)
    def assign_rep(self, request: AssignRequest) -> str:
        """Pick the rep for this assignment; a retry returns the same rep and takes no turn."""
        with Session(self.engine) as session:
            done = session.get(RepAssignment, request.key)
            if done is not None:
                return done.rep_id
            turn = self._take_turn(session, request.pool) if request.strategy != "first" else 0
            rep = pick_rep(request.candidates, request.strategy, turn)
            session.add(
                RepAssignment(
                    key=request.key, lead_id=request.lead_id, pool=request.pool, rep_id=rep
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                existing = session.get(RepAssignment, request.key)
                assert existing is not None
                return existing.rep_id
            return rep

    @staticmethod
    def _take_turn(session: Session, pool: str) -> int:
        """Atomically take the pool's next turn (UPDATE … RETURNING, no read-modify-write)."""
        for _ in range(2):
            taken = session.execute(
                update(RoundRobinTurn)
                .where(col(RoundRobinTurn.pool) == pool)
                .values(turns=col(RoundRobinTurn.turns) + 1)
                .returning(col(RoundRobinTurn.turns))
            ).scalar_one_or_none()
            if taken is not None:
                return int(taken) - 1
            try:
                with session.begin_nested():
                    session.add(RoundRobinTurn(pool=pool, turns=0))
            except IntegrityError:
                pass
        raise RuntimeError(f"could not take a round-robin turn for pool {pool!r}")
