"""Round-robin turns shared across leads and workers, and assignments remembered per key.

Reps who are away today or at their cap of open leads are skipped (see
:func:`nurture.domain.routing.choose_available`); a rep's open leads are counted from the read
model: leads whose latest stage transition is ``assigned`` or ``working`` with that rep as owner.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, date, datetime

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from temporalio import activity

from nurture.contract.messages import ASSIGN_REP, AssignRequest
from nurture.domain.routing import choose_available, pick_rep, unavailable_because
from nurture.domain.stages import SALES_STAGES
from nurture.store.db import RepAssignment, RoundRobinTurn, StageTransition

log = structlog.get_logger(__name__)


def utc_today() -> date:
    return datetime.now(UTC).date()


def open_lead_counts(session: Session, reps: Collection[str]) -> dict[str, int]:
    """How many leads each of ``reps`` holds open: leads whose latest transition (by time,
    then by the transition number ending the key, ``<lead>:t<N>``) moved them to ``assigned``
    or ``working`` with that rep as owner. One aggregate query; reps holding none are absent.

    The window ranks all of a lead's transitions, restricted to leads these reps ever owned.
    ``length(key)`` before ``key`` orders ``t9`` before ``t10`` (same lead, same prefix)."""
    if not reps:
        return {}
    owners = list(reps)
    ever_owned = select(col(StageTransition.lead_id)).where(col(StageTransition.owner).in_(owners))
    ranked = (
        select(
            col(StageTransition.owner).label("owner"),
            col(StageTransition.to_stage).label("to_stage"),
            func.row_number()
            .over(
                partition_by=col(StageTransition.lead_id),
                order_by=(
                    col(StageTransition.at).desc(),
                    func.length(col(StageTransition.key)).desc(),
                    col(StageTransition.key).desc(),
                ),
            )
            .label("recency"),
        )
        .where(col(StageTransition.lead_id).in_(ever_owned))
        .subquery("latest")
    )
    rows = session.execute(
        select(ranked.c.owner, func.count())
        .where(
            ranked.c.recency == 1,
            ranked.c.to_stage.in_(sorted(SALES_STAGES)),
            ranked.c.owner.in_(owners),
        )
        .group_by(ranked.c.owner)
    ).all()
    return {str(owner): int(count) for owner, count in rows}


class RoutingActivities:
    def __init__(self, engine: Engine, today: Callable[[], date] = utc_today) -> None:
        self.engine = engine
        self.today = today  # the activity's wall clock (UTC day); tests pass their own

    @activity.defn(name=ASSIGN_REP)
    def assign_rep(self, request: AssignRequest) -> str | None:
        """Pick the rep for this assignment; a retry returns the same rep and takes no turn.
        None when everyone who could take the lead is excluded (its owner and the reps who
        missed its SLA): the lead stays where it is."""
        with Session(self.engine) as session:
            done = session.get(RepAssignment, request.key)
            if done is not None:
                return done.rep_id
            capped = [r.id for r in request.reps if r.max_open_leads is not None]
            # Counted before the turn is taken: the pool's turn row stays locked briefly.
            open_counts = open_lead_counts(session, capped)
            turn = self._take_turn(session, request.pool) if request.strategy != "first" else 0
            today = self.today()
            rep: str | None
            if request.reps or request.exclude:
                rep, reasons = choose_available(
                    request.candidates,
                    turn,
                    request.strategy,
                    request.reps,
                    open_counts,
                    today,
                    request.fallback_owner,
                    request.exclude,
                )
            else:  # a request from before availability existed: exactly the old choice
                rep, reasons = pick_rep(request.candidates, request.strategy, turn), []
            if rep is None:
                log.info(
                    "nobody left to take the lead",
                    lead_id=request.lead_id,
                    workflow_id=activity.info().workflow_id,
                    key=request.key,
                    pool=request.pool,
                    excluded=request.exclude,
                )
                return None
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
            if reasons:
                by_id = {limit.id: limit for limit in request.reps}
                unavailable = {
                    candidate: why
                    for candidate in request.candidates
                    if (why := unavailable_because(candidate, by_id, open_counts, today))
                }
                log.info(
                    "unavailable reps skipped",
                    lead_id=request.lead_id,
                    workflow_id=activity.info().workflow_id,
                    key=request.key,
                    pool=request.pool,
                    rep=rep,
                    unavailable=unavailable,
                    reasons=reasons,
                )
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
