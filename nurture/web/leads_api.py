"""Reading leads and acting on them over HTTP, under the same rules as the CLI: a rep key
sees and acts on its own leads only; the workflow refuses illegal transitions."""

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from nurture.access.auth import ACT_ON_LEADS, READ_LEADS, Principal
from nurture.client.sales import (
    LeadActionError,
    TemporalUnavailableError,
    UnknownLeadError,
    act,
    read_state,
)
from nurture.contract.messages import (
    ActionResult,
    LeadState,
    OutcomeRequest,
    RejectRequest,
    RepAction,
    TaskCompletion,
)
from nurture.contract.names import RepUpdate
from nurture.domain.leads import check_plain_text
from nurture.domain.scoring import explain
from nurture.store.campaigns import MAX_AMOUNT
from nurture.store.db import SalesTask
from nurture.web.responses import AUTHENTICATED, JSON_BODY, errors
from nurture.web.security import Caller, requires

# What a rep writes travels to the lead as an update payload and into the read model: plain
# text of bounded size, so no action can fail on its way (a lone surrogate cannot be encoded,
# PostgreSQL refuses NUL) or outgrow a payload.
RepName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(check_plain_text)]
Note = Annotated[str, Field(max_length=2000), AfterValidator(check_plain_text)]
# A rep action: 404 no such lead, 409 not in this stage, 503 Temporal unavailable.
ACTION_ERRORS = errors(AUTHENTICATED, JSON_BODY, 404, 409, 503)

TaskId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the task's number")]
"""A task number the database can hold (a larger one was a 500: SQLite's INTEGER overflowed)."""


class ActionBody(BaseModel):
    rep: RepName | None = Field(default=None, description="operators only: the rep who acted")
    note: Note | None = None


class RejectBody(ActionBody):
    reason: Annotated[
        str, Field(min_length=3, max_length=2000), AfterValidator(check_plain_text)
    ] = Field(description="why sales returns the lead")


class OutcomeBody(ActionBody):
    result: Literal["won", "lost"]
    amount: float | None = Field(default=None, ge=0, le=MAX_AMOUNT, allow_inf_nan=False)


class TaskBody(ActionBody):
    outcome: Annotated[
        str, Field(min_length=1, max_length=100), AfterValidator(check_plain_text)
    ] = Field(description="e.g. connected, wrong_number, sent")


class ScoreLine(BaseModel):
    rule: str
    points: int
    times: int


class LeadView(BaseModel):
    score: int = Field(description="fit + behaviour points now")
    explanation: list[ScoreLine] = Field(description="every rule that contributed")
    state: LeadState


def _acting_rep(who: Principal, body: ActionBody) -> str:
    """A rep acts as itself (a different ``rep`` in the body is refused); an operator names
    the rep it acts for."""
    if who.role == "rep":
        if body.rep not in (None, who.rep_id):
            raise HTTPException(403, f"this key acts as rep {who.rep_id!r}, not {body.rep!r}")
        assert who.rep_id is not None
        return who.rep_id
    if not body.rep:
        raise HTTPException(422, "an operator must say which rep acted: give 'rep'")
    return body.rep


def _not_the_reps(who: Principal, lead_id: str) -> HTTPException:
    """One answer for a lead that does not exist and another rep's lead: a rep key learns
    neither that the lead exists nor who owns it."""
    return HTTPException(404, f"rep {who.rep_id!r} has no lead {lead_id!r}")


def _lead_error(exc: LeadActionError) -> HTTPException:
    if isinstance(exc, UnknownLeadError):
        return HTTPException(404, str(exc))
    if isinstance(exc, TemporalUnavailableError):
        return HTTPException(503, f"{exc}; nothing was changed, try again")
    if "does not own this lead" in str(exc):
        return HTTPException(403, str(exc))
    return HTTPException(409, str(exc))


@dataclass
class LeadsApi:
    """Reading a lead and acting on it as a rep. A rep key sees and acts on its own leads
    only, and is told nothing about the others (one 404 for unknown and not its own)."""

    client: Client
    engine: Engine

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api", tags=["leads"])
        reader = [Depends(requires(self.engine, *READ_LEADS))]
        actor = [Depends(requires(self.engine, *ACT_ON_LEADS))]
        router.add_api_route(
            "/leads/{lead_id}",
            self.lead,
            methods=["GET"],
            dependencies=reader,
            response_model=LeadView,
            responses=errors(AUTHENTICATED, 404, 422, 503),
            summary="State, score, timeline",
        )
        for action in (self.accept, self.contact, self.reject, self.outcome):
            router.add_api_route(
                f"/leads/{{lead_id}}/{action.__name__}",
                action,
                methods=["POST"],
                dependencies=actor,
                response_model=ActionResult,
                responses=ACTION_ERRORS,
            )
        router.add_api_route(
            "/tasks",
            self.tasks,
            methods=["GET"],
            dependencies=actor,
            responses=errors(AUTHENTICATED, 422),
            summary="The inside-sales queue",
        )
        router.add_api_route(
            "/tasks/{task_id}/complete",
            self.complete,
            methods=["POST"],
            dependencies=actor,
            response_model=ActionResult,
            responses=ACTION_ERRORS,
        )
        return router

    async def lead(self, lead_id: str, who: Caller) -> LeadView:
        state = await self._state_for(who, lead_id)
        lines = [ScoreLine(rule=r, points=p, times=t) for r, p, t in explain(state.score)]
        return LeadView(score=state.score.total, explanation=lines, state=state)

    async def accept(
        self, lead_id: str, who: Caller, body: ActionBody | None = None
    ) -> ActionResult:
        body = body or ActionBody()
        request = RepAction(rep=_acting_rep(who, body), note=body.note)
        return await self._perform(who, lead_id, "accept", request)

    async def contact(
        self, lead_id: str, who: Caller, body: ActionBody | None = None
    ) -> ActionResult:
        body = body or ActionBody()
        request = RepAction(rep=_acting_rep(who, body), note=body.note)
        return await self._perform(who, lead_id, "contact", request)

    async def reject(self, lead_id: str, who: Caller, body: RejectBody) -> ActionResult:
        request = RejectRequest(rep=_acting_rep(who, body), reason=body.reason, note=body.note)
        return await self._perform(who, lead_id, "reject", request)

    async def outcome(self, lead_id: str, who: Caller, body: OutcomeBody) -> ActionResult:
        request = OutcomeRequest(
            rep=_acting_rep(who, body), result=body.result, amount=body.amount, note=body.note
        )
        return await self._perform(who, lead_id, "outcome", request)

    async def tasks(
        self, who: Caller, status: Literal["open", "done", "expired", "cancelled"] = "open"
    ) -> list[dict[str, object]]:
        if who.role == "rep" and status not in ("open", "expired"):
            raise HTTPException(403, "rep keys see the queue (open and expired tasks) only")

        def load() -> list[dict[str, object]]:
            query = select(SalesTask).where(SalesTask.status == status)
            with Session(self.engine) as session:
                rows = session.exec(query.order_by(col(SalesTask.due_at))).all()
                return [row.model_dump(mode="json") for row in rows]

        return await run_in_threadpool(load)

    async def complete(self, task_id: TaskId, who: Caller, body: TaskBody) -> ActionResult:
        def load() -> SalesTask | None:
            with Session(self.engine) as session:
                return session.get(SalesTask, task_id)

        task = await run_in_threadpool(load)
        if task is None:
            raise HTTPException(404, f"no task #{task_id}")
        request = TaskCompletion(
            rep=_acting_rep(who, body), task_key=task.key, outcome=body.outcome, note=body.note
        )
        return await self._perform(who, task.lead_id, "complete_task", request)

    async def _state_for(self, who: Principal, lead_id: str) -> LeadState:
        try:
            state = await read_state(self.client, lead_id)
        except LeadActionError as exc:
            if who.role == "rep" and isinstance(exc, UnknownLeadError):
                raise _not_the_reps(who, lead_id) from None
            raise _lead_error(exc) from None
        if who.role == "rep" and state.owner != who.rep_id:
            raise _not_the_reps(who, lead_id)
        return state

    async def _perform(
        self, who: Principal, lead_id: str, action: RepUpdate, request: RepAction
    ) -> ActionResult:
        if who.role == "rep" and action != "complete_task":
            await self._state_for(who, lead_id)
        elif who.role == "rep":  # inside-sales tasks: leads in marketing, or the rep's own
            try:
                owner = (await read_state(self.client, lead_id)).owner
            except LeadActionError as exc:
                raise _lead_error(exc) from None
            if owner not in (None, who.rep_id):
                raise _not_the_reps(who, lead_id)
        try:
            return await act(self.client, lead_id, action, request)
        except LeadActionError as exc:
            raise _lead_error(exc) from None
