"""Signed, expiring links for sales reps: their inbox, and one-click accept/reject of a lead
straight from an alert email. The link is the credential (reps have no password here), so it
names the rep and expires; anything altered or too old is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

LinkAction = Literal["inbox", "accept", "reject"]
_SALT = "nurture.rep-links.v1"


class RepLinkError(ValueError):
    """The link is damaged, forged or expired; the message says which."""


@dataclass(frozen=True)
class RepClaim:
    rep: str
    action: LinkAction
    lead_id: str | None = None


@dataclass(frozen=True)
class RepLinks:
    secret: str
    public_url: str
    max_age: timedelta = timedelta(days=7)

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=_SALT)

    def token(self, claim: RepClaim) -> str:
        return str(self._serializer().dumps([claim.rep, claim.action, claim.lead_id]))

    def url(self, claim: RepClaim) -> str:
        token = self.token(claim)
        base = self.public_url.rstrip("/")
        if claim.action == "inbox":
            return f"{base}/inbox/{token}"
        return f"{base}/inbox/{token}/{claim.action}"

    def verify(self, token: str) -> RepClaim:
        try:
            rep, action, lead_id = self._serializer().loads(
                token, max_age=int(self.max_age.total_seconds())
            )
        except SignatureExpired:
            raise RepLinkError(
                "this link has expired: open your inbox from a newer alert, or ask for a new "
                "link ('nurture inbox-link --rep <you>')"
            ) from None
        except (BadData, ValueError, TypeError):
            raise RepLinkError("this link is damaged or was not made by Nurture") from None
        if action not in ("inbox", "accept", "reject"):
            raise RepLinkError("this link is damaged or was not made by Nurture")
        return RepClaim(rep=str(rep), action=action, lead_id=lead_id)

    def __repr__(self) -> str:
        return f"RepLinks(public_url={self.public_url!r}, secret='***')"
