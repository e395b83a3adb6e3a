"""Signed, expiring links to the marketing dashboard. The link is the credential, as for the
rep inbox; the token carries how many days it is good for (signed, so it cannot be stretched)
and when it was made. It expires a week after it was made unless made for longer (up to
:data:`MAX_LINK_DAYS`, ``nurture dashboard-link --days``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nurture.access.signed_links import ExpiringLinks, SignedLinkError

MAX_LINK_DAYS = 366


class DashboardLinkError(SignedLinkError):
    """The link is damaged, forged or expired; the message says which."""


@dataclass(frozen=True, repr=False)
class DashboardLinks(ExpiringLinks):
    """Signed, expiring dashboard links."""

    salt = "dashboard"
    damaged = (
        "this dashboard link is damaged or was not made by Nurture: use the link "
        "exactly as you received it, or ask for a new one ('nurture dashboard-link')"
    )
    expired = "this dashboard link has expired: ask for a new one ('nurture dashboard-link')"
    error = DashboardLinkError

    def token(self, valid_for: timedelta | None = None) -> str:
        days = (valid_for or self.max_age) / timedelta(days=1)
        if not 0 < days <= MAX_LINK_DAYS:
            raise ValueError(f"a dashboard link is valid for 1 to {MAX_LINK_DAYS} days")
        return self._sign({"days": days})

    def url(self, valid_for: timedelta | None = None) -> str:
        return self._link("dashboard", self.token(valid_for))

    def verify(self, token: str) -> timedelta:
        """Check the token; return how long it is still valid."""
        days, signed_at = self._read(token, _days)
        if not 0 < days <= MAX_LINK_DAYS:
            raise DashboardLinkError("this dashboard link is damaged or was not made by Nurture")
        assert signed_at is not None  # a timed token
        left = signed_at + timedelta(days=days) - datetime.now(UTC)
        if left <= timedelta(0):
            raise DashboardLinkError(self.expired)
        return left


def _days(claim: Any) -> float:
    return float(claim["days"])
