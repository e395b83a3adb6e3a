"""The rep inbox: a server-rendered page per rep (my leads, SLA countdown, the story, accept
and reject buttons) and the one-click accept/reject links of alert emails.

A signed, expiring link is the rep's credential (:mod:`nurture.rep_links`). A GET never acts
(mail scanners follow links); the buttons POST. Every action goes through the lead's workflow
update, so the same rules hold as everywhere: only the owner, legal transitions only.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from temporalio.client import Client
from temporalio.service import RPCError

from nurture.leads import workflow_id_for
from nurture.messages import LeadState, RejectRequest, RepAction
from nurture.rep_links import RepClaim, RepLinkError, RepLinks
from nurture.sales import LeadActionError, act, read_state
from nurture.scoring import explain

log = structlog.get_logger(__name__)

OPEN_STAGES = ("assigned", "working")
REP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as in routing.yaml; safe in a query
MAX_LEADS_SHOWN = 200
QUERY_TIMEOUT = 5.0  # seconds; a lead whose worker does not answer is left out, not waited on


@dataclass
class RepInbox:
    client: Client
    links: RepLinks
    pages: Environment
    task_queue: str

    def router(self) -> APIRouter:
        router = APIRouter(tags=["rep inbox"], include_in_schema=False)
        router.add_api_route("/inbox/{token}", self.inbox, methods=["GET"])
        router.add_api_route("/inbox/{token}/{action}", self.confirm, methods=["GET"])
        router.add_api_route("/inbox/{token}/{action}", self.act_by_link, methods=["POST"])
        router.add_api_route(
            "/inbox/{token}/leads/{lead_id}/{action}", self.act_from_inbox, methods=["POST"]
        )
        return router

    def _page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.pages.get_template(name).render(**context), status_code=status)

    def _refused(self, message: str, status: int = 403) -> HTMLResponse:
        return self._page("message.html", status, title="Link refused", message=message)

    def _claim(self, token: str, action: str) -> RepClaim:
        claim = self.links.verify(token)
        if claim.action != action or (action != "inbox") != (claim.lead_id is not None):
            raise RepLinkError("this link is for something else: open the link from your alert")
        if not REP_ID.fullmatch(claim.rep):
            raise RepLinkError("this link names no valid rep")
        return claim

    async def _my_leads(self, rep: str) -> list[LeadState]:
        stages = ", ".join(repr(s) for s in OPEN_STAGES)
        query = (
            f"TaskQueue = '{self.task_queue}' AND ExecutionStatus = 'Running' "
            f"AND LeadOwner = '{rep}' AND LeadStage IN ({stages})"
        )
        lead_ids = [
            execution.id.removeprefix("lead-")
            async for execution in self.client.list_workflows(query, limit=MAX_LEADS_SHOWN)
        ]
        found = await asyncio.gather(*(self._state_of(lead_id) for lead_id in lead_ids))
        # The query's answer is the truth; visibility may lag behind it.
        states = [s for s in found if s and s.owner == rep and s.stage in OPEN_STAGES]
        return sorted(states, key=_urgency)

    async def _state_of(self, lead_id: str) -> LeadState | None:
        try:
            return await asyncio.wait_for(read_state(self.client, lead_id), QUERY_TIMEOUT)
        except (LeadActionError, TimeoutError):
            log.warning("lead left out of the inbox: no answer", lead_id=lead_id)
            return None

    def _card(self, state: LeadState, token: str) -> dict[str, Any]:
        return {
            "state": state,
            "explanation": explain(state.score)[:6],
            "accept": f"/inbox/{token}/leads/{state.lead_id}/accept",
            "reject": f"/inbox/{token}/leads/{state.lead_id}/reject",
        }

    async def inbox(self, token: str) -> HTMLResponse:
        try:
            claim = self._claim(token, "inbox")
        except RepLinkError as exc:
            return self._refused(str(exc))
        states = await self._my_leads(claim.rep)
        return self._page("inbox.html", rep=claim.rep, cards=[self._card(s, token) for s in states])

    async def confirm(self, token: str, action: str) -> HTMLResponse:
        try:
            claim = self._claim(token, action)
            assert claim.lead_id is not None  # _claim checked it
            state = await read_state(self.client, claim.lead_id)
        except RepLinkError as exc:
            return self._refused(str(exc))
        except LeadActionError as exc:
            return self._refused(str(exc), 404)
        if state.owner != claim.rep:  # reassigned since the alert: not this rep's to see
            return self._refused(f"{claim.lead_id} is no longer yours (owner: {state.owner})")
        return self._page(
            "confirm.html",
            rep=claim.rep,
            action=action,
            card=self._card(state, token),
            post_to=f"/inbox/{token}/{action}",
        )

    async def act_by_link(
        self, token: str, action: str, reason: Annotated[str | None, Form()] = None
    ) -> HTMLResponse:
        if action not in ("accept", "reject"):
            return self._refused(f"unknown action {action!r}", 404)
        try:
            claim = self._claim(token, action)
        except RepLinkError as exc:
            return self._refused(str(exc))
        assert claim.lead_id is not None  # _claim checked it
        return await self._act(claim.rep, claim.lead_id, action, reason)

    async def act_from_inbox(
        self,
        token: str,
        lead_id: str,
        action: str,
        reason: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        try:
            claim = self._claim(token, "inbox")
        except RepLinkError as exc:
            return self._refused(str(exc))
        return await self._act(claim.rep, lead_id, action, reason)

    async def _act(self, rep: str, lead_id: str, action: str, reason: str | None) -> HTMLResponse:
        if action == "accept":
            request: RepAction = RepAction(rep=rep)
        elif action == "reject":
            if not reason or len(reason.strip()) < 3:
                return self._page(
                    "message.html",
                    422,
                    title="Say why",
                    message="A reject needs a reason of at least 3 characters.",
                )
            request = RejectRequest(rep=rep, reason=reason.strip())
        else:
            return self._refused(f"unknown action {action!r}", 404)
        try:
            result = await act(self.client, lead_id, action, request)  # type: ignore[arg-type]
        except LeadActionError as exc:
            return self._page("message.html", 409, title="Not done", message=str(exc))
        except RPCError as exc:
            return self._page("message.html", 503, title="Try again", message=exc.message)
        log.info(
            "rep action from inbox",
            lead_id=lead_id,
            workflow_id=workflow_id_for(lead_id),
            rep=rep,
            action=action,
        )
        verb = "accepted" if action == "accept" else "returned to marketing"
        return self._page(
            "message.html",
            title=f"Lead {verb}",
            message=f"{lead_id} is now {result.stage}.",
            done=True,
        )


def _urgency(state: LeadState) -> datetime:
    """Most urgent first: the nearest SLA deadline; leads already being worked come last."""
    due = state.handoff.sla_due_at if state.handoff else None
    return due or datetime.max.replace(tzinfo=UTC)
