"""The rep inbox: a server-rendered page per rep (my leads with their email and phone, SLA
countdown, the story, and Accept / Contact / Reject / Won / Lost) and the one-click accept/reject
links of alert emails.

A signed, expiring link is the rep's credential (:mod:`nurture.access.rep_links`). A GET never acts
(mail scanners follow links); the buttons POST, and a POST a browser sent from another site is
refused. Every action goes through the lead's workflow update, as the API's do, so the same
rules hold everywhere: only the owner, legal transitions only. After an action the rep is back
in the inbox, told what became of the lead. A lead that is not the rep's is answered exactly
as one that does not exist: the inbox never tells that a lead exists or who owns it.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeSerializer
from jinja2 import Environment
from temporalio.client import Client

from nurture.access.rep_links import RepClaim, RepLinkError, RepLinks
from nurture.client.sales import (
    LeadActionError,
    TemporalUnavailableError,
    UnknownLeadError,
    act,
    read_state,
)
from nurture.contract.messages import LeadState, OutcomeRequest, RejectRequest, RepAction
from nurture.contract.names import RepUpdate
from nurture.domain.leads import workflow_id_for
from nurture.domain.scoring import explain
from nurture.runtime.fan_out import gather_bounded
from nurture.store.campaigns import MAX_AMOUNT
from nurture.web.security import CrossSiteRequestError, refuse_cross_site

log = structlog.get_logger(__name__)

OPEN_STAGES = ("assigned", "working")
REP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as in routing.yaml; safe in a query
MAX_LEADS_SHOWN = 200
QUERIES_IN_FLIGHT = 16
"""Queries one inbox page asks at a time (a server refuses a namespace's excess requests)."""
QUERY_TIMEOUT = 5.0  # seconds; a lead whose worker does not answer is left out, not waited on
LINK_ACTIONS = ("accept", "reject")  # the one-click links of alert emails
# What the inbox buttons do: the button's name, and the workflow update it goes through.
INBOX_ACTIONS: dict[str, RepUpdate] = {
    "accept": "accept",
    "contact": "contact",
    "reject": "reject",
    "won": "outcome",
    "lost": "outcome",
}
DONE = {
    "accept": "accepted",
    "contact": "marked as contacted",
    "reject": "returned to marketing",
    "won": "marked as won",
    "lost": "marked as lost",
}
_FLASH_SALT = "nurture.inbox-flash.v1"


class ActionRefused(Exception):
    """The action cannot be done; ``status`` and the message say why."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def not_in_inbox(lead_id: str) -> ActionRefused:
    """The same answer for a lead that does not exist and a lead that is someone else's."""
    return ActionRefused(
        404,
        "Not in your inbox",
        f"Lead {lead_id} is not in your inbox: it was reassigned or closed, or the link is "
        "for someone else.",
    )


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

    # --- pages ---------------------------------------------------------------------------------

    def _page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.pages.get_template(name).render(**context), status_code=status)

    def _refused(self, message: str, status: int = 403) -> HTMLResponse:
        return self._page("message.html", status, title="Link refused", message=message)

    def _problem(self, refused: ActionRefused, inbox_url: str | None) -> HTMLResponse:
        return self._page(
            "message.html",
            refused.status,
            title=refused.title,
            message=refused.message,
            back=inbox_url,
        )

    def _claim(self, token: str, action: str) -> RepClaim:
        claim = self.links.verify(token)
        if claim.action != action or (action != "inbox") != (claim.lead_id is not None):
            raise RepLinkError("this link is for something else: open the link from your alert")
        if not REP_ID.fullmatch(claim.rep):
            raise RepLinkError("this link names no valid rep")
        return claim

    def _inbox_url(self, rep: str) -> str:
        """A path to the rep's inbox (the one-click links carry no inbox token of their own)."""
        return f"/inbox/{self.links.token(RepClaim(rep=rep, action='inbox'))}"

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
        # A rep with 200 leads is not 200 queries at once.
        found = await gather_bounded(QUERIES_IN_FLIGHT, self._state_of, lead_ids)
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
        base = f"/inbox/{token}/leads/{state.lead_id}"
        return {
            "state": state,
            "explanation": explain(state.score)[:6],
            "actions": {action: f"{base}/{action}" for action in INBOX_ACTIONS},
        }

    async def inbox(self, token: str, done: str | None = None) -> HTMLResponse:
        try:
            claim = self._claim(token, "inbox")
        except RepLinkError as exc:
            return self._refused(str(exc))
        states = await self._my_leads(claim.rep)
        return self._page(
            "inbox.html",
            rep=claim.rep,
            cards=[self._card(s, token) for s in states],
            flash=await self._flash_text(done, states),
        )

    async def confirm(self, token: str, action: str) -> HTMLResponse:
        """The page a one-click link opens: the lead and one button (a GET never acts)."""
        if action not in LINK_ACTIONS:
            return self._page(
                "message.html", 404, title="No such page", message="There is no page here."
            )
        try:
            claim = self._claim(token, action)
        except RepLinkError as exc:
            return self._refused(str(exc))
        assert claim.lead_id is not None  # _claim checked it: an action link names its lead
        try:
            state = await self._owned_state(claim.rep, claim.lead_id)
        except ActionRefused as refused:
            return self._problem(refused, self._inbox_url(claim.rep))
        return self._page(
            "confirm.html",
            rep=claim.rep,
            action=action,
            card={"state": state, "actions": None},
            post_to=f"/inbox/{token}/{action}",
        )

    # --- actions -------------------------------------------------------------------------------

    async def act_by_link(
        self,
        request: Request,
        token: str,
        action: str,
        reason: Annotated[str | None, Form()] = None,
    ) -> Response:
        if action not in LINK_ACTIONS:
            return self._refused(f"unknown action {action!r}", 404)
        try:
            refuse_cross_site(request, self.links.public_url)
            claim = self._claim(token, action)
        except (RepLinkError, CrossSiteRequestError) as exc:
            return self._refused(str(exc))
        assert claim.lead_id is not None  # _claim checked it
        return await self._act(claim.rep, claim.lead_id, action, self._inbox_url(claim.rep), reason)

    async def act_from_inbox(
        self,
        request: Request,
        token: str,
        lead_id: str,
        action: str,
        reason: Annotated[str | None, Form()] = None,
        amount: Annotated[str | None, Form()] = None,
    ) -> Response:
        try:
            refuse_cross_site(request, self.links.public_url)
            claim = self._claim(token, "inbox")
        except (RepLinkError, CrossSiteRequestError) as exc:
            return self._refused(str(exc))
        return await self._act(claim.rep, lead_id, action, f"/inbox/{token}", reason, amount)

    async def _act(
        self,
        rep: str,
        lead_id: str,
        action: str,
        inbox_url: str,
        reason: str | None = None,
        amount: str | None = None,
    ) -> Response:
        """Do ``action`` as ``rep`` and go back to the inbox, which tells what became of the
        lead; a refusal is a page saying why, with the way back."""
        try:
            update = _update_for(action, rep, reason, amount)
            await self._owned_state(rep, lead_id)
            result = await act(self.client, lead_id, INBOX_ACTIONS[action], update)
        except ActionRefused as refused:
            return self._problem(refused, inbox_url)
        except TemporalUnavailableError:
            return self._problem(_try_again(), inbox_url)
        except LeadActionError as exc:
            return self._problem(ActionRefused(409, "Not done", str(exc)), inbox_url)
        log.info(
            "rep action from inbox",
            lead_id=lead_id,
            workflow_id=workflow_id_for(lead_id),
            rep=rep,
            action=action,
        )
        flash = self._flashes().dumps([lead_id, action, result.stage])
        return RedirectResponse(f"{inbox_url}?done={flash}", status_code=303)

    async def _owned_state(self, rep: str, lead_id: str) -> LeadState:
        """The lead's state if ``rep`` owns it; unknown and someone else's are one answer."""
        try:
            state = await read_state(self.client, lead_id)
        except UnknownLeadError:
            raise not_in_inbox(lead_id) from None
        except LeadActionError:
            raise _try_again() from None
        if state.owner != rep:
            raise not_in_inbox(lead_id)
        return state

    # --- the flash message after an action -----------------------------------------------------

    def _flashes(self) -> URLSafeSerializer:
        # Signed, so a crafted link cannot make the inbox say anything, nor name another's lead.
        return URLSafeSerializer(self.links.secret, salt=_FLASH_SALT)

    async def _flash_text(self, done: str | None, states: list[LeadState]) -> str | None:
        """What the last action did, from the signed ``done`` of the redirect to here."""
        if not done:
            return None
        try:
            lead_id, action, stage = self._flashes().loads(done)
        except (BadData, ValueError, TypeError):
            return None
        if action not in DONE:
            return None
        names = {s.lead_id: s.profile.display_name for s in states}
        if lead_id in names:
            return f"{names[lead_id]}: {DONE[action]}. Now {stage}; it stays in your inbox."
        # Signed: the rep acted on this lead a moment ago, so its name is theirs to see.
        state = await self._state_of(lead_id)
        who = state.profile.display_name if state else f"Lead {lead_id}"
        return f"{who}: {DONE[action]}. Now {stage}; it has left your inbox."


def _update_for(action: str, rep: str, reason: str | None, amount: str | None) -> RepAction:
    """The workflow update's input for an inbox button, or why the form is not enough."""
    if action not in INBOX_ACTIONS:
        raise ActionRefused(404, "No such action", f"There is no action {action!r}.")
    if action == "reject":
        if not reason or len(reason.strip()) < 3:
            raise ActionRefused(422, "Say why", "A reject needs a reason of at least 3 characters.")
        return RejectRequest(rep=rep, reason=reason.strip())
    if action in ("won", "lost"):
        value = _amount(amount) if action == "won" else None
        return OutcomeRequest(rep=rep, result=action, amount=value)
    return RepAction(rep=rep)


def _amount(text: str | None) -> float | None:
    """The deal's amount as typed (``12,500`` or ``12500.50``); empty means not known."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text.strip().replace(",", "").replace(" ", ""))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_AMOUNT:
        raise ActionRefused(
            422,
            "Check the amount",
            f"The amount {text.strip()!r} is not a number from 0 to {MAX_AMOUNT:,.0f} "
            "(write 12500 or 12,500.50; leave it empty if you do not know it).",
        )
    return value


def _try_again() -> ActionRefused:
    return ActionRefused(
        503, "Try again", "Nurture could not reach the lead just now; nothing was changed."
    )


def _urgency(state: LeadState) -> datetime:
    """Most urgent first: the nearest SLA deadline; leads already being worked come last."""
    due = state.handoff.sla_due_at if state.handoff else None
    return due or datetime.max.replace(tzinfo=UTC)
