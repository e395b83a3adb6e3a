"""``/u/{token}``: the one-click unsubscribe link of every marketing email.

GET shows a confirmation page with a button (link scanners fetch URLs, so a GET must not
unsubscribe anyone); POST unsubscribes, both from that button and from the mailbox provider's
RFC 8058 one-click button (``List-Unsubscribe=One-Click``). The address goes on the global
suppression list first, so no email is sent to it even if the lead cannot be told right away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from nurture.access.consent import InvalidLinkError, LinkSigner, UnsubscribeClaim
from nurture.client.lead_signals import signal_existing_lead
from nurture.domain.leads import LeadEvent
from nurture.web.event_store import EventStore
from nurture.web.responses import errors, html_errors
from nurture.web.security import CrossSiteRequestError, refuse_cross_site

log = structlog.get_logger(__name__)


@dataclass
class UnsubscribePages:
    client: Client
    store: EventStore
    signer: LinkSigner
    pages: Environment

    def router(self) -> APIRouter:
        router = APIRouter(tags=["consent"])
        invalid_link = {**html_errors(403), **errors(422)}
        router.add_api_route(
            "/u/{token}",
            self.confirm,
            methods=["GET"],
            response_class=HTMLResponse,
            responses=invalid_link,
        )
        router.add_api_route(
            "/u/{token}",
            self.unsubscribe,
            methods=["POST"],
            response_class=HTMLResponse,
            responses=invalid_link,
        )
        return router

    def _page(self, status: int, **context: object) -> HTMLResponse:
        html = self.pages.get_template("unsubscribe.html").render(**context)
        return HTMLResponse(html, status_code=status)

    async def _claim(self, token: str) -> tuple[UnsubscribeClaim, str]:
        """The claim in the link and the address the email went to (from the outbox, so the
        address never travels in the URL)."""
        claim = self.signer.verify(token)
        email = await run_in_threadpool(self.store.recipient_of, claim.key)
        if email is None:
            raise InvalidLinkError("we have no record of the email this link came with")
        return claim, email

    async def confirm(self, token: str) -> HTMLResponse:
        try:
            _, email = await self._claim(token)
        except InvalidLinkError as exc:
            return self._page(403, state="invalid", message=str(exc))
        return self._page(200, state="confirm", email=email, action=f"/u/{token}")

    async def unsubscribe(self, request: Request, token: str) -> HTMLResponse:
        try:
            refuse_cross_site(request, self.signer.public_url)
        except CrossSiteRequestError as exc:
            return self._page(403, state="invalid", message=str(exc))
        try:
            claim, email = await self._claim(token)
        except InvalidLinkError as exc:
            return self._page(403, state="invalid", message=str(exc))
        await run_in_threadpool(
            self.store.suppress, email, "unsubscribe", "unsubscribe link", claim.lead_id
        )
        await self._tell_lead(claim)
        return self._page(200, state="done", email=email)

    async def _tell_lead(self, claim: UnsubscribeClaim) -> None:
        bound = log.bind(lead_id=claim.lead_id, touch=claim.key)
        event = LeadEvent(
            lead_id=claim.lead_id,
            type="unsubscribe",
            at=datetime.now(UTC),
            event_id=claim.event_id,
            props={"touch_id": claim.key, "source": "link"},
        )
        try:
            if await signal_existing_lead(self.client, event):
                bound.info("unsubscribed by link")
            else:
                bound.warning("unsubscribed by link; no running lead workflow to tell")
        except RPCError as exc:
            # Already on the suppression list: the next send is refused and suppresses the lead.
            bound.error("unsubscribed, but the lead could not be told yet", error=exc.message)
