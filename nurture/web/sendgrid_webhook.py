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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from nurture.leads import LeadEvent
from nurture.web.event_store import EventStore
from nurture.web.lead_signals import signal_existing_lead
from nurture.web.webhook_verify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRefused,
    WebhookVerifier,
    signature_digest,
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


def lead_event_type(item: dict[str, Any]) -> str | None:
    """The lead event a SendGrid event becomes, or None if it only gets recorded
    (processed, delivered, deferred…). A ``blocked`` bounce is temporary: not suppressed."""
    kind = str(item.get("event", ""))
    if kind == "bounce" and item.get("type") == "blocked":
        return None
    return BEHAVIOURS.get(kind) or SUPPRESSING.get(kind)


def to_lead_event(item: dict[str, Any], kind: str) -> LeadEvent:
    timestamp = item.get("timestamp")
    at = (
        datetime.fromtimestamp(timestamp, UTC)
        if isinstance(timestamp, int | float)
        else datetime.now(UTC)
    )
    return LeadEvent(
        lead_id=str(item.get("lead_id")),
        type=kind,
        at=at,
        url=item.get("url") if isinstance(item.get("url"), str) else None,
        event_id=f"sg:{item['sg_event_id']}",
        props={
            key: item[key]
            for key in ("touch_id", "sg_message_id", "reason", "type")
            if isinstance(item.get(key), str)
        },
    )


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

    def router(self) -> APIRouter:
        router = APIRouter(tags=["sendgrid"])
        router.add_api_route(
            "/webhooks/sendgrid",
            self.receive,
            methods=["POST"],
            response_model=WebhookSummary,
            summary="SendGrid Event Webhook (signed)",
        )
        return router

    async def receive(self, request: Request) -> WebhookSummary:
        body = await request.body()
        signature = request.headers.get(SIGNATURE_HEADER)
        if self.verifier is None:
            log.error("sendgrid webhook refused: no verification key configured")
            raise HTTPException(
                403,
                "signed webhooks are not configured: set SENDGRID_WEBHOOK_PUBLIC_KEY to the "
                "verification key of your SendGrid account",
            )
        try:
            await run_in_threadpool(
                self.verifier.verify,
                body,
                signature,
                request.headers.get(TIMESTAMP_HEADER),
                self.store.post_seen,
            )
        except WebhookRefused as exc:
            log.warning("sendgrid webhook refused", reason=str(exc))
            raise HTTPException(403, str(exc)) from None
        try:
            items = json.loads(body)
        except ValueError:
            raise HTTPException(400, "the body is not JSON: expected an array of events") from None
        if not isinstance(items, list):
            raise HTTPException(400, "expected a JSON array of events")
        summary = WebhookSummary(received=len(items))
        for item in items:
            await self._handle(item, summary)
        assert signature is not None
        await run_in_threadpool(
            self.store.remember_post,
            signature_digest(signature),
            timedelta(seconds=2 * self.verifier.max_age_seconds),
        )
        log.info("sendgrid events", **summary.model_dump())
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
        if not await run_in_threadpool(self.store.claim, sg_event_id, item, lead_id):
            summary.duplicates += 1
            return
        kind = lead_event_type(item)
        if kind is not None and kind in SUPPRESSING.values() and isinstance(item.get("email"), str):
            await run_in_threadpool(
                self.store.suppress, item["email"], kind, f"sendgrid {item['event']}", lead_id
            )
        status, detail = await self._deliver(item, kind, lead_id)
        await run_in_threadpool(self.store.finish, sg_event_id, status, detail)
        setattr(summary, status, getattr(summary, status) + 1)

    async def _deliver(
        self, item: dict[str, Any], kind: str | None, lead_id: str | None
    ) -> tuple[str, str | None]:
        if kind is None:
            return "recorded", None
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
