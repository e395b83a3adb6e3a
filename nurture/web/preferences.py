"""``/p/{token}``: the preferences page every marketing email's footer links to.

The person sees the topics cadences are about (``topic:`` in cadences.yaml), ticked when they
receive them, and chooses; or unsubscribes from all, which is the unsubscribe link's own form
(``/u/…``, ``nurture/web/unsubscribe.py``). The link is signed like the unsubscribe link and
carries the lead and the email it came with, never the address. A GET changes nothing; the
save is a POST refused when a browser sent it from another site, and reaches the lead as its
``preferences`` update, once per form shown (its ``request_id``), however often it is sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from nurture.access.consent import InvalidLinkError, LinkSigner, UnsubscribeClaim
from nurture.client.sales import (
    LeadActionError,
    TemporalUnavailableError,
    UnknownLeadError,
    read_state,
    update_lead,
)
from nurture.contract.messages import PreferenceChange
from nurture.contract.names import PREFERENCES_UPDATE
from nurture.web.event_store import EventStore
from nurture.web.responses import html_errors
from nurture.web.security import CrossSiteRequestError, refuse_cross_site

log = structlog.get_logger(__name__)


class PageRefused(Exception):
    """The page cannot be shown or the choice saved; ``status`` and the message say why."""

    def __init__(self, status: int, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.title = status, message, title


def topic_name(topic: str) -> str:
    """How a topic reads on the page: ``product-news`` is "Product news"."""
    return topic.replace("-", " ").replace("_", " ").capitalize()


@dataclass
class PreferencePages:
    client: Client
    store: EventStore
    signer: LinkSigner
    pages: Environment
    topics: Callable[[], list[str]]
    """The topics the cadences in force declare."""

    def router(self) -> APIRouter:
        router = APIRouter(tags=["consent"])
        refused = html_errors(403, 404, 409, 422, 503)
        for method, endpoint in (("GET", self.show), ("POST", self.save)):
            router.add_api_route(
                "/p/{token}",
                endpoint,
                methods=[method],
                response_class=HTMLResponse,
                responses=refused,
            )
        return router

    async def show(self, token: str) -> HTMLResponse:
        try:
            claim, email = await self._claim(token)
            left = await self._topics_left(claim)
        except PageRefused as exc:
            return self._refused(exc)
        return self._choices(token, claim, email, left, "choose")

    async def save(self, request: Request, token: str) -> HTMLResponse:
        try:
            refuse_cross_site(request, self.signer.public_url)
        except CrossSiteRequestError as exc:
            return self._refused(PageRefused(403, str(exc)))
        try:
            claim, email = await self._claim(token)
            change = await self._change(request, claim)
            await update_lead(
                self.client,
                claim.lead_id,
                PREFERENCES_UPDATE,
                change,
                update_id=f"preferences-{change.request_id}",
            )
        except PageRefused as exc:
            return self._refused(exc)
        except UnknownLeadError:
            return self._refused(_no_lead())
        except TemporalUnavailableError:
            return self._refused(_try_again())
        except LeadActionError as exc:  # its words name the lead: for the log, not the page
            log.warning("preferences refused", lead_id=claim.lead_id, reason=str(exc))
            return self._refused(
                PageRefused(409, "we could not save your choice just now", "Not saved")
            )
        log.info("preferences saved", lead_id=claim.lead_id, touch=claim.key)
        return self._choices(token, claim, email, change.topics_left, "saved")

    # --- the parts ---------------------------------------------------------------------------

    async def _claim(self, token: str) -> tuple[UnsubscribeClaim, str]:
        """The claim in the link and the address the email went to (from the outbox)."""
        try:
            claim = self.signer.verify_preferences(token)
        except InvalidLinkError as exc:
            raise PageRefused(403, str(exc)) from None
        email = await run_in_threadpool(self.store.recipient_of, claim.key)
        if email is None:
            raise PageRefused(403, "we have no record of the email this link came with")
        return claim, email

    async def _topics_left(self, claim: UnsubscribeClaim) -> list[str]:
        try:
            state = await read_state(self.client, claim.lead_id)
        except UnknownLeadError:
            raise _no_lead() from None
        except LeadActionError:
            raise _try_again() from None
        return state.preferences.topics_left if state.preferences else []

    async def _change(self, request: Request, claim: UnsubscribeClaim) -> PreferenceChange:
        """The choice in the form: the topics shown and not ticked are the ones left. A form
        that does not say which topics it showed says nothing about them (and would otherwise
        read as every topic ticked): it is refused, and so is a topic no cadence has."""
        form = await request.form()
        shown = list(dict.fromkeys(str(v) for v in form.getlist("shown")))
        ticked = {str(v) for v in form.getlist("topic")}
        if not shown:
            raise _not_saved("the form did not say which topics it showed you (shown)")
        try:
            change = PreferenceChange(
                request_id=str(form.get("request_id") or ""),
                topics_left=[topic for topic in shown if topic not in ticked],
            )
        except ValidationError as exc:
            raise _not_saved(_form_problem(exc)) from None
        known = await self._known_topics(claim)
        unknown = [topic for topic in shown if topic not in known]
        if unknown:
            names = ", ".join(topic_name(topic) for topic in unknown)
            raise _not_saved(f"we send no emails about {names} (shown)")
        return change

    async def _known_topics(self, claim: UnsubscribeClaim) -> set[str]:
        """The topics the page offers this person: the cadences' and any they left."""
        return {*self.topics(), *await self._topics_left(claim)}

    def _choices(
        self, token: str, claim: UnsubscribeClaim, email: str, left: list[str], state: str
    ) -> HTMLResponse:
        topics = list(dict.fromkeys([*self.topics(), *left]))
        html = self.pages.get_template("preferences.html").render(
            state=state,
            email=email,
            action=f"/p/{token}",
            unsubscribe_action=f"/u/{self.signer.token(claim)}",
            request_id=secrets.token_urlsafe(16),
            topics=[
                {"id": topic, "name": topic_name(topic), "receives": topic not in left}
                for topic in topics
            ],
            receives=[topic_name(topic) for topic in topics if topic not in left],
        )
        return HTMLResponse(html)

    def _refused(self, refused: PageRefused) -> HTMLResponse:
        html = self.pages.get_template("preferences.html").render(
            state="invalid", message=refused.message, title=refused.title
        )
        return HTMLResponse(html, status_code=refused.status)


def _form_problem(exc: ValidationError) -> str:
    """What is wrong with the form, naming its field: ``topics_left`` is made from ``shown``
    (the person never saw ``topics_left.0``)."""
    if exc.errors()[0]["loc"][0] == "topics_left":
        return "the form holds topics that are not ours (shown)"
    return "the form is not one of ours or was altered (request_id)"


def _not_saved(message: str) -> PageRefused:
    return PageRefused(422, f"{message}, so nothing was changed", "Not saved")


def _no_lead() -> PageRefused:
    return PageRefused(404, "we hold no preferences for this address any more", "Nothing to change")


def _try_again() -> PageRefused:
    return PageRefused(
        503, "we cannot reach your preferences right now: try again in a minute", "Please try again"
    )
