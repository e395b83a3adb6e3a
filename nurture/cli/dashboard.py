"""``nurture dashboard-link``: a signed, expiring link to the marketing dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from nurture.access.consent import ConsentConfigError, LinkSigner
from nurture.access.dashboard_links import MAX_LINK_DAYS, DashboardLinks
from nurture.cli.output import console, fail


def dashboard_link(
    days: Annotated[
        int, typer.Option(min=1, max=MAX_LINK_DAYS, help="how many days the link works")
    ] = 7,
) -> None:
    """Print a signed link to the dashboard (every report as charts, with a period picker).
    Whoever holds the link sees the dashboard until it expires: share it like a password.
    Changing NURTURE_SECRET_KEY revokes every link.

    The link points at NURTURE_PUBLIC_URL, else at this machine's HTTP service
    (http://NURTURE_HTTP_HOST:NURTURE_HTTP_PORT, default 127.0.0.1:8080): set
    NURTURE_PUBLIC_URL when the dashboard is opened from another machine."""
    try:
        signer = LinkSigner.from_env(create=False)
    except ConsentConfigError as exc:
        raise typer.Exit(fail(str(exc), 2)) from None
    links = DashboardLinks(signer.secret, signer.public_url)
    console.print(links.url(timedelta(days=days)), highlight=False, soft_wrap=True)
