"""The token a link in our emails carries (``?nt=…``) so the tracker can tell whose browser
opened it: signed for one lead, expiring, and good for nothing else (it cannot act on the
lead, only join the visitor to it). A forwarded email joins the forwardee's browser to the
lead, as it does in every tracker that identifies from email links: the token expires, and a
visitor who identifies as someone else later is theirs from then on (docs/tracking.md)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from nurture.access.signed_links import ExpiringLinks, SignedLinkError

TOKEN_PARAMETER = "nt"


class IdentifyLinkError(SignedLinkError):
    """The token is damaged, forged or expired."""


@dataclass(frozen=True, repr=False)
class IdentifyLinks(ExpiringLinks):
    salt = "identify-visitor"
    error = IdentifyLinkError
    max_age: timedelta = timedelta(days=60)

    def token_for(self, lead_id: str, signed_at: datetime | None = None) -> str:
        """The lead's token, signed now or at ``signed_at`` (an email tagged again when its
        send is retried carries the same token: what a retry delivers does not change)."""
        return self._sign({"lead": lead_id}, signed_at)

    def lead_of(self, token: str) -> str:
        """The lead the token was signed for; :class:`IdentifyLinkError` if it is not good."""
        lead, _ = self._read(token[:1000], lambda p: str(p["lead"]), self.max_age)
        return lead

    def tagged(self, url: str, lead_id: str, signed_at: datetime | None = None) -> str:
        """``url`` carrying the lead's token (any token it had is replaced)."""
        return with_token(url, self.token_for(lead_id, signed_at))

    def new_lead_id(self, email: str) -> str:
        """The id of a lead first known from a website by its address: the same for the same
        address (two forms at once make one lead), telling nothing of the address without
        the secret."""
        normal = email.strip().lower().encode()
        digest = hmac.new(self.secret.encode(), b"web-lead\0" + normal, hashlib.sha256)
        return "web-" + digest.hexdigest()[:24]


def with_token(url: str, token: str) -> str:
    """``url`` with ``nt=token``: any ``nt`` it had is replaced, the rest of it is kept as
    written (its other parameters neither re-encoded nor re-ordered). The token is URL-safe."""
    parts = urlsplit(url)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote_plus(pair.split("=", 1)[0]) != TOKEN_PARAMETER
    ]
    query = "&".join([*kept, f"{TOKEN_PARAMETER}={token}"])
    return urlunsplit(parts._replace(path=parts.path or "/", query=query))
