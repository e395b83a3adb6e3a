"""``POST /webhooks/sendgrid``: SendGrid's Event Webhook.

Each post is a JSON array of events. A post is refused (403) unless it is signed with the
account's key, fresh and not a replay. Each event is recorded once by ``sg_event_id``; opens
and clicks reach the lead as behaviours (and score), bounces, drops, spam reports and
unsubscribes put the address on the suppression list and suppress the lead. Events for no known
lead are recorded, not dropped. If Temporal cannot be reached the post is answered 503, so
SendGrid delivers it again, and the events not yet applied are applied then.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from nurture.client.lead_signals import signal_existing_lead
from nurture.domain.engagement import engagement_of
from nurture.domain.leads import URL_MAX, LeadEvent
from nurture.web.event_store import EventStore
from nurture.web.responses import errors
from nurture.web.webhook_verify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRefused,
    WebhookVerifier,
    post_digest,
)

log = structlog.get_logger(__name__)

BEHAVIOURS = {"open": "email_open", "click": "email_click"}
SUPPRESSING = {
    "bounce": "bounce",
    "dropped": "dropped",
    "spamreport": "spamreport",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
MAX_BODY_BYTES = 5 * 1024 * 1024  # SendGrid batches by size; this is far above its batches


def lead_event_type(
    item: dict[str, Any], is_unsubscribe_link: Callable[[str], bool]
) -> tuple[str | None, str | None]:
    """The lead event a SendGrid event becomes, or None and why it is only recorded.

    Only events about marketing touches speak for the lead: an open of a rep's alert is the
    rep's, and a rep's bouncing mailbox says nothing about the lead's address.
    """
    kind = str(item.get("event", ""))
    mapped = BEHAVIOURS.get(kind) or SUPPRESSING.get(kind)
    if mapped is None:
        return None, None  # processed, delivered, deferred…: kept for the record
    if item.get("category") != "touch" and not item.get("touch_id"):
        return None, "event on a sales alert, not on a marketing email"
    if kind == "bounce" and item.get("type") == "blocked":
        return None, "blocked: a temporary refusal, the address stays mailable"
    url = item.get("url")
    if kind == "click" and isinstance(url, str) and is_unsubscribe_link(url):
        return None, "click on the unsubscribe link is not interest"
    return mapped, None


def to_lead_event(item: dict[str, Any], kind: str) -> LeadEvent:
    timestamp = item.get("timestamp")
    at = (
        datetime.fromtimestamp(timestamp, UTC)
        if isinstance(timestamp, int | float) and 0 < timestamp < 10**11
        else datetime.now(UTC)
    )
    touch_id = item.get("touch_id") if isinstance(item.get("touch_id"), str) else None
    # An unsubscribe from a touch has one identity whichever way it comes (link or provider).
    event_id = (
        f"unsubscribe:{touch_id}"
        if kind == "unsubscribe" and touch_id
        else f"sg:{item['sg_event_id']}"
    )
    # SendGrid reports on our own emails, so nothing is refused; what it echoes is cut to the
    # sizes the lead takes at the edge (a click's URL, a bounce reason) and cleaned of control
    # characters, so one odd event cannot exceed what a lead's signal carries.
    return LeadEvent(
        lead_id=str(item.get("lead_id")),
        type=kind,
        at=at,
        url=plain(item["url"], URL_MAX) if isinstance(item.get("url"), str) else None,
        event_id=event_id[:200],
        props={
            key: plain(item[key], WEBHOOK_TEXT_MAX)
            for key in ("touch_id", "sg_message_id", "reason", "type")
            if isinstance(item.get(key), str)
        },
    )


WEBHOOK_TEXT_MAX = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def plain(text: str, limit: int) -> str:
    return _CONTROL.sub("", text)[:limit]


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything larger than ``limit`` before it is all buffered."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"a webhook post may be at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"a webhook post may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class WebhookSummary(BaseModel):
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    unknown_lead: int = 0
    recorded: int = 0
    invalid: int = 0


@dataclass
class SendGridWebhook:
    client: Client
    store: EventStore
    verifier: WebhookVerifier | None
    is_unsubscribe_link: Callable[[str], bool]

    def router(self) -> APIRouter:
        router = APIRouter(tags=["sendgrid"])
        router.add_api_route(
            "/webhooks/sendgrid",
            self.receive,
            methods=["POST"],
            response_model=WebhookSummary,
            responses=errors(400, 403, 413, 503),
            summary="SendGrid Event Webhook (signed)",
        )
        return router

    async def receive(self, request: Request) -> WebhookSummary:
        if self.verifier is None:
            log.error("sendgrid webhook refused: no verification key configured")
            raise HTTPException(
                403,
                "signed webhooks are not configured: set SENDGRID_WEBHOOK_PUBLIC_KEY to the "
                "verification key of your SendGrid account",
            )
        body = await read_limited(request, MAX_BODY_BYTES)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        try:
            await run_in_threadpool(
                self.verifier.verify, body, request.headers.get(SIGNATURE_HEADER), timestamp
            )
            assert timestamp is not None
            digest = post_digest(body, timestamp)
            keep = timedelta(seconds=2 * self.verifier.max_age_seconds)
            if not await run_in_threadpool(self.store.claim_post, digest, keep):
                raise WebhookRefused("replayed post: this signed post was already taken in")
        except WebhookRefused as exc:
            log.warning("sendgrid webhook refused", reason=str(exc))
            raise HTTPException(403, str(exc)) from None
        try:
            summary = await self._apply(body)
        except HTTPException:
            await run_in_threadpool(self.store.release_post, digest)  # let the retry in
            raise
        log.info("sendgrid events", **summary.model_dump())
        return summary

    async def _apply(self, body: bytes) -> WebhookSummary:
        try:
            items = json.loads(body)
        except ValueError:
            raise HTTPException(400, "the body is not JSON: expected an array of events") from None
        if not isinstance(items, list):
            raise HTTPException(400, "expected a JSON array of events")
        summary = WebhookSummary(received=len(items))
        for item in items:
            await self._handle(item, summary)
        return summary

    async def _handle(self, item: object, summary: WebhookSummary) -> None:
        if not isinstance(item, dict) or not isinstance(item.get("sg_event_id"), str):
            # Kept under a digest of its content, so even a malformed event is not lost.
            raw = json.dumps(item, sort_keys=True, default=str)
            digest = "invalid:" + hashlib.sha256(raw.encode()).hexdigest()[:40]
            record = item if isinstance(item, dict) else {"value": item}
            if await run_in_threadpool(self.store.claim, digest, record, None):
                await run_in_threadpool(self.store.finish, digest, "invalid", "no sg_event_id")
            summary.invalid += 1
            return
        sg_event_id = item["sg_event_id"][:100]
        lead_id = item.get("lead_id") if isinstance(item.get("lead_id"), str) else None
        engagement = engagement_of(item, self.is_unsubscribe_link)
        if not await run_in_threadpool(self.store.claim, sg_event_id, item, lead_id, engagement):
            summary.duplicates += 1
            return
        kind, why_not = lead_event_type(item, self.is_unsubscribe_link)
        email = item.get("email")
        if kind is not None and kind in SUPPRESSING.values() and isinstance(email, str):
            await run_in_threadpool(
                self.store.suppress, email, kind, f"sendgrid {item['event']}", lead_id
            )
        if kind is None:
            status, detail = "recorded", why_not
        else:
            status, detail = await self._deliver(item, kind, lead_id)
        await run_in_threadpool(self.store.finish, sg_event_id, status, detail)
        setattr(summary, status, getattr(summary, status) + 1)

    async def _deliver(
        self, item: dict[str, Any], kind: str, lead_id: str | None
    ) -> tuple[str, str | None]:
        if lead_id is None:
            return "unknown_lead", "no lead_id custom arg on the event"
        try:
            event = to_lead_event(item, kind)
        except ValidationError as exc:
            return "unknown_lead", f"not a lead id: {exc.errors()[0]['msg']}"
        try:
            delivered = await signal_existing_lead(self.client, event)
        except RPCError as exc:
            log.error("temporal unavailable; asking SendGrid to retry", error=exc.message)
            raise HTTPException(503, "Temporal is unavailable; please retry") from None
        if not delivered:
            return "unknown_lead", f"no lead {lead_id!r}"
        return "applied", None
