"""Consent: signed one-click unsubscribe links, and where the signing secret comes from.

A link carries the lead, the address and the touch it came with, signed with the engine's
secret (itsdangerous), so nobody can unsubscribe someone else by editing a URL. Unsubscribe
links never expire: RFC 8058 and the mailbox providers expect them to keep working.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadData, URLSafeSerializer

SECRET_ENV = "NURTURE_SECRET_KEY"
PUBLIC_URL_ENV = "NURTURE_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
_SALT = "nurture.unsubscribe.v1"


class InvalidLinkError(ValueError):
    """A link that was not made by this engine, or was altered on the way."""


@dataclass(frozen=True)
class UnsubscribeClaim:
    lead_id: str
    email: str
    key: str  # the idempotency key of the email the link came with

    @property
    def event_id(self) -> str:
        """One unsubscribe per email: clicking twice, or link + webhook, counts once."""
        return f"unsubscribe:{self.key}"


@dataclass(frozen=True)
class LinkSigner:
    """Makes and checks the signed tokens in unsubscribe links."""

    secret: str
    public_url: str = DEFAULT_PUBLIC_URL

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError(f"{SECRET_ENV} must be at least 16 characters long")

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> LinkSigner:
        """``NURTURE_SECRET_KEY`` and ``NURTURE_PUBLIC_URL``; without a key, one is generated
        once into ``<data dir>/secret.key`` so links stay valid across restarts."""
        secret = os.environ.get(SECRET_ENV) or _secret_file(
            data_dir or Path(os.environ.get("NURTURE_DATA_DIR", "data"))
        )
        return cls(secret=secret, public_url=os.environ.get(PUBLIC_URL_ENV, DEFAULT_PUBLIC_URL))

    def _serializer(self) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=_SALT)

    def token(self, claim: UnsubscribeClaim) -> str:
        return str(self._serializer().dumps([claim.lead_id, claim.email, claim.key]))

    def unsubscribe_url(self, claim: UnsubscribeClaim) -> str:
        return f"{self.public_url.rstrip('/')}/u/{self.token(claim)}"

    def verify(self, token: str) -> UnsubscribeClaim:
        try:
            lead_id, email, key = self._serializer().loads(token)
        except (BadData, ValueError, TypeError) as exc:
            raise InvalidLinkError(
                "this unsubscribe link is damaged or was not sent by us"
            ) from exc
        return UnsubscribeClaim(lead_id=str(lead_id), email=str(email), key=str(key))

    def __repr__(self) -> str:  # never let the secret reach a log line
        return f"LinkSigner(public_url={self.public_url!r}, secret='***')"


def _secret_file(data_dir: Path) -> str:
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    # Created with owner-only permissions before the secret is written.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret
