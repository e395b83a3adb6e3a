"""Is this post really from SendGrid, and new? ECDSA signature over timestamp + body, checked
with the ``sendgrid`` library's own verifier, plus a freshness window and a replay check."""

from __future__ import annotations

import binascii
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP
PUBLIC_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"


class WebhookRefused(Exception):
    """The post is refused (HTTP 403); the message says why."""


def post_digest(payload: bytes, timestamp: str) -> str:
    """What makes a post unique: its signed content. Not the signature itself, which can be
    re-encoded (base64 padding, ECDSA's s/n-s) without becoming invalid."""
    return hashlib.sha256(timestamp.encode() + b"\n" + payload).hexdigest()


@dataclass
class WebhookVerifier:
    """``public_key`` is the base64 verification key SendGrid shows for the signed webhook."""

    public_key: str
    max_age_seconds: int = 300
    clock: Callable[[], float] = field(default=time.time, repr=False)
    _key: EllipticCurvePublicKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._key = EventWebhook().convert_public_key_to_ecdsa(self.public_key)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{PUBLIC_KEY_ENV} is not a SendGrid verification key (expected the base64 key "
                "from Settings > Mail Settings > Signed Event Webhook)"
            ) from exc

    def verify(
        self,
        payload: bytes,
        signature: str | None,
        timestamp: str | None,
    ) -> None:
        """Raise :class:`WebhookRefused` unless the post is signed and fresh. Replays are
        refused by the caller, which claims :func:`post_digest` before applying anything."""
        if not signature or not timestamp:
            raise WebhookRefused(
                f"unsigned post: the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are "
                "required (enable the Signed Event Webhook in SendGrid)"
            )
        if not re.fullmatch(r"[0-9]{1,12}", timestamp):
            raise WebhookRefused(f"bad {TIMESTAMP_HEADER}: {timestamp[:40]!r} is not unix seconds")
        age = self.clock() - int(timestamp)
        if abs(age) > self.max_age_seconds:
            raise WebhookRefused(
                f"stale post: signed {int(age)} s ago, more than the {self.max_age_seconds} s "
                "allowed (a replayed or badly delayed post)"
            )
        try:
            text = payload.decode("utf-8")
            valid = EventWebhook().verify_signature(text, signature, timestamp, self._key)
        except (UnicodeDecodeError, binascii.Error, ValueError):
            valid = False
        if not valid:
            raise WebhookRefused(
                "forged post: the signature does not match this body and timestamp for the "
                "configured SendGrid verification key"
            )
