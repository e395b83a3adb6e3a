"""Signed, expiring links for sales reps: their inbox, and one-click accept/reject of a lead
straight from an alert email. The link is the credential (reps have no password here), so it
names the rep and expires; anything altered or too old is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nurture.access.signed_links import ExpiringLinks, SignedLinkError

LinkAction = Literal["inbox", "accept", "reject"]


class RepLinkError(SignedLinkError):
    """The link is damaged, forged or expired; the message says which."""


@dataclass(frozen=True)
class RepClaim:
    rep: str
    action: LinkAction
    lead_id: str | None = None


@dataclass(frozen=True, repr=False)
class RepLinks(ExpiringLinks):
    salt = "nurture.rep-links.v1"
    error = RepLinkError
    expired = (
        "this link has expired: open your inbox from a newer alert, or ask for a new "
        "link ('nurture inbox-link --rep <you>')"
    )

    def token(self, claim: RepClaim) -> str:
        return self._sign([claim.rep, claim.action, claim.lead_id])

    def url(self, claim: RepClaim) -> str:
        token = self.token(claim)
        if claim.action == "inbox":
            return self._link("inbox", token)
        return self._link("inbox", token, claim.action)

    def verify(self, token: str) -> RepClaim:
        (rep, action, lead_id), _ = self._read(token, _triple, self.max_age)
        if action not in ("inbox", "accept", "reject"):
            raise RepLinkError(self.damaged)
        return RepClaim(rep=str(rep), action=action, lead_id=lead_id)


def _triple(payload: Any) -> tuple[Any, Any, Any]:
    rep, action, lead_id = payload
    return rep, action, lead_id
