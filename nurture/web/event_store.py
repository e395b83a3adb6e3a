"""What the webhook and the unsubscribe links write: received events (once each by
``sg_event_id``), accepted post signatures, and the global suppression list."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from nurture.domain.engagement import Engagement, touch_key_of
from nurture.store import suppression
from nurture.store.db import OutboxMessage, WebhookEvent, WebhookPost

FINAL_STATUSES = frozenset({"applied", "unknown_lead", "recorded", "invalid"})


class EventStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(
        self,
        sg_event_id: str,
        item: dict[str, Any],
        lead_id: str | None,
        engagement: Engagement | None = None,
    ) -> bool:
        """Record the event (with what it counts as, and the touch it is about); False when it
        was already handled (a duplicate delivery). An event recorded but never finished
        (Temporal was down) is handed out again."""
        sg_event_id, lead_id = _storable(sg_event_id)[:100], _text(lead_id, 200)
        with Session(self.engine) as session:
            existing = session.get(WebhookEvent, sg_event_id)
            if existing is not None:
                return existing.status not in FINAL_STATUSES
            session.add(
                WebhookEvent(
                    sg_event_id=sg_event_id,
                    event=_text(item.get("event"), 40) or "",
                    email=_text(item.get("email"), 320),
                    lead_id=lead_id,
                    message_id=_text(item.get("sg_message_id"), 200),
                    touch_key=_text(touch_key_of(item), 300),
                    engagement=engagement,
                    payload=json.dumps(item, sort_keys=True, default=str),
                )
            )
            try:
                session.commit()
            except IntegrityError:  # the same event in a concurrent post
                session.rollback()
                return False
            return True

    def finish(self, sg_event_id: str, status: str, detail: str | None = None) -> None:
        sg_event_id, detail = _storable(sg_event_id)[:100], _text(detail, 10_000)
        with Session(self.engine) as session:
            row = session.get(WebhookEvent, sg_event_id)
            if row is not None:
                row.status, row.detail = status, detail
                session.add(row)
                session.commit()

    def claim_post(self, digest: str, keep: timedelta) -> bool:
        """Claim a signed post before applying it; False if it was claimed before (a replay,
        or the same post arriving twice at once). Claims older than ``keep`` are forgotten:
        such posts are refused as stale anyway."""
        cutoff = datetime.now(UTC) - keep
        with Session(self.engine) as session:
            session.exec(delete(WebhookPost).where(col(WebhookPost.received_at) < cutoff))  # type: ignore[call-overload]
            session.add(WebhookPost(post_digest=digest))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
            return True

    def release_post(self, digest: str) -> None:
        """Forget a claim whose post could not be applied, so the sender's retry gets in."""
        with Session(self.engine) as session:
            row = session.get(WebhookPost, digest)
            if row is not None:
                session.delete(row)
                session.commit()

    def recipient_of(self, key: str) -> str | None:
        """The address the email with this idempotency key was sent to."""
        with Session(self.engine) as session:
            row = session.get(OutboxMessage, key)
            return row.to_email if row is not None else None

    def suppress(self, email: str, reason: str, source: str, lead_id: str | None) -> None:
        """Put the address on the do-not-email list (the first reason is kept)."""
        suppression.suppress(self.engine, _storable(email), reason, source, _text(lead_id, 200))


def _text(value: object, limit: int) -> str | None:
    return _storable(str(value))[:limit] if value is not None else None


def _storable(text: str) -> str:
    """What a webhook sent, as text every database takes: a lone surrogate cannot be encoded
    and PostgreSQL refuses NUL, either of which would fail the whole post."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
