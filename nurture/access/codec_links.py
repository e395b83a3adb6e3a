"""Signed, expiring codec endpoints for the Temporal Web UI.

The UI decodes payloads by posting them from the operator's browser to ``<endpoint>/decode``;
it sends no API key of ours, so the endpoint itself carries the credential: a signed token in
its path, made and checked as dashboard links are. ``nurture up`` hands the dev server's UI a
fresh one; ``nurture codec-link`` prints one for a UI elsewhere. Changing ``NURTURE_SECRET_KEY``
revokes them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from nurture.access.dashboard_links import DashboardLinkError, DashboardLinks


class CodecLinkError(DashboardLinkError):
    """The endpoint's token is damaged, forged or expired."""


@dataclass(frozen=True, repr=False)
class CodecLinks(DashboardLinks):
    salt = "codec"
    error = CodecLinkError
    damaged = "this codec endpoint is damaged or was not made by Nurture ('nurture codec-link')"
    expired = "this codec endpoint has expired: make a new one ('nurture codec-link')"

    def endpoint(self, valid_for: timedelta | None = None) -> str:
        return self._link("codec", self.token(valid_for))
