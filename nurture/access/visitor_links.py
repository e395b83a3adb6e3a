"""The token a link in our emails carries (``?nt=…``) so the tracker can tell whose browser
opened it: signed for one lead, expiring, and good for nothing else (it cannot act on the
lead, only join the visitor to it). A forwarded email joins the forwardee's browser to the
lead, as it does in every tracker that identifies from email links: the token expires, and a
visitor who identifies as someone else later is theirs from then on (docs/tracking.md)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nurture.access.signed_links import ExpiringLinks, SignedLinkError

TOKEN_PARAMETER = "nt"


class IdentifyLinkError(SignedLinkError):
    """The token is damaged, forged or expired."""


@dataclass(frozen=True, repr=False)
class IdentifyLinks(ExpiringLinks):
    salt = "identify-visitor"
    error = IdentifyLinkError
    max_age: timedelta = timedelta(days=60)

    def token_for(self, lead_id: str) -> str:
        return self._sign({"lead": lead_id})

    def lead_of(self, token: str) -> str:
        """The lead the token was signed for; :class:`IdentifyLinkError` if it is not good."""
        lead, _ = self._read(token[:1000], lambda p: str(p["lead"]), self.max_age)
        return lead

    def tagged(self, url: str, lead_id: str) -> str:
        """``url`` carrying the lead's token (any token it had is replaced)."""
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        query = [(k, v) for k, v in query if k != TOKEN_PARAMETER]
        query.append((TOKEN_PARAMETER, self.token_for(lead_id)))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def new_lead_id(self, email: str) -> str:
        """The id of a lead first known from a website by its address: the same for the same
        address (two forms at once make one lead), telling nothing of the address without
        the secret."""
        normal = email.strip().lower().encode()
        digest = hmac.new(self.secret.encode(), b"web-lead\0" + normal, hashlib.sha256)
        return "web-" + digest.hexdigest()[:24]
