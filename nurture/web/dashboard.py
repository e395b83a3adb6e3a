"""The marketing dashboard page and its charts API: the tiles and charts of
:mod:`nurture.reports.dashboard` for a period, on a page anyone with a signed link can open.

The link is the credential, as for the rep inbox (:mod:`nurture.access.dashboard_links`):
signed with the deployment's secret, and it expires (a week unless made for longer with
``nurture dashboard-link --days``). Changing ``NURTURE_SECRET_KEY`` revokes every link.
Marketer and operator API keys can fetch the same charts as plotly JSON from
``/api/dashboard/charts`` to embed them elsewhere.

Charts are drawn in the browser by plotly.js, which is served from the plotly package itself
(``/static/plotly.min.js``): the page needs nothing from the internet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import plotly
import structlog
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from jinja2 import Environment
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from nurture.access.auth import MARKETING
from nurture.access.dashboard_links import DashboardLinkError, DashboardLinks
from nurture.reports.base import ReportQuery, query_problems
from nurture.reports.dashboard import build_dashboard
from nurture.web.responses import AUTHENTICATED, errors
from nurture.web.security import requires

log = structlog.get_logger(__name__)

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


# --- HTTP -------------------------------------------------------------------------------------


def parse_day(value: str | None, name: str) -> datetime | None:
    """A date (``2026-11-01``) or a time (``2026-11-01T09:00:00+01:00``); without a zone, UTC.
    Empty means open."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a date: use 2026-11-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def period_query(since: str | None, until: str | None) -> ReportQuery:
    try:
        return ReportQuery(since=parse_day(since, "since"), until=parse_day(until, "until"))
    except ValidationError as exc:
        raise ValueError(query_problems(exc)) from None


def _presets(today: date) -> list[tuple[str, str, str]]:
    """(label, since, until) of the quick periods; until is exclusive, so tomorrow."""
    tomorrow = (today + timedelta(days=1)).isoformat()
    return [
        ("Last 7 days", (today - timedelta(days=6)).isoformat(), tomorrow),
        ("Last 30 days", (today - timedelta(days=29)).isoformat(), tomorrow),
        ("Last 90 days", (today - timedelta(days=89)).isoformat(), tomorrow),
        ("This year", date(today.year, 1, 1).isoformat(), tomorrow),
        ("All time", "", ""),
    ]


def message_page(pages: Environment, status: int, title: str, message: str) -> HTMLResponse:
    html = pages.get_template("message.html").render(title=title, message=message)
    return HTMLResponse(html, status_code=status)


def verified_link(
    links: DashboardLinks, pages: Environment, token: str
) -> timedelta | HTMLResponse:
    """How long the dashboard link ``token`` still works, or the page refusing it (403): the
    dashboard and every page opened from it take the same link."""
    try:
        return links.verify(token)
    except DashboardLinkError as exc:
        return message_page(pages, 403, "Link refused", str(exc))


@dataclass
class DashboardPages:
    engine: Engine
    links: DashboardLinks
    pages: Environment

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(
            "/dashboard/{token}", self.page, methods=["GET"], include_in_schema=False
        )
        router.add_api_route(
            "/static/plotly.min.js", self.plotly_js, methods=["GET"], include_in_schema=False
        )
        router.add_api_route(
            "/api/dashboard/charts",
            self.charts,
            methods=["GET"],
            tags=["reports"],
            dependencies=[Depends(requires(self.engine, *MARKETING))],
            responses=errors(AUTHENTICATED, 422),
        )
        return router

    async def charts(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> JSONResponse:
        """Every dashboard chart for [since, until) (ISO 8601, a date or a time; either may be
        left out) as plotly figure JSON (draw one with ``Plotly.newPlot(el, figure.data,
        figure.layout)``), with the headline tiles. Needs a marketer or operator API key."""
        try:
            query = ReportQuery(since=since, until=until)
        except ValidationError as exc:
            raise HTTPException(422, query_problems(exc)) from None
        dashboard = await run_in_threadpool(build_dashboard, self.engine, query)
        return JSONResponse(dashboard.as_json())

    async def plotly_js(self) -> FileResponse:
        return FileResponse(
            PLOTLY_JS,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    def _render(self, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.pages.get_template("dashboard.html").render(**context)
        return HTMLResponse(html, status_code=status)  # security headers: PageSecurityHeaders

    async def page(
        self, token: str, since: str | None = None, until: str | None = None
    ) -> HTMLResponse:
        left = verified_link(self.links, self.pages, token)
        if isinstance(left, HTMLResponse):
            return left
        started = time.monotonic()
        context: dict[str, Any] = {
            "token": token,
            "since": since or "",
            "until": until or "",
            "presets": _presets(datetime.now(UTC).date()),
            "link_days_left": max(int(left / timedelta(days=1)), 0),
        }
        try:
            query = period_query(since, until)
        except ValueError as exc:
            return self._render(422, error=str(exc), **context)
        dashboard = await run_in_threadpool(build_dashboard, self.engine, query)
        log.info(
            "dashboard shown",
            since=since,
            until=until,
            ms=round((time.monotonic() - started) * 1000),
        )
        return self._render(
            dashboard=dashboard,
            period=_period_text(query),
            figures={c.id: c.figure for c in dashboard.charts},
            **context,
        )


def _period_text(query: ReportQuery) -> str:
    def day(value: datetime) -> str:
        text = f"{value.day} {value:%b %Y}"
        return text if value.time() == datetime.min.time() else f"{text} {value:%H:%M}"

    if query.since is None and query.until is None:
        return "All time"
    if query.until is None:
        assert query.since is not None
        return f"From {day(query.since)} to now"
    until = query.until
    if until.time() == datetime.min.time():  # a date: the day before is the last one shown
        last = day(until - timedelta(days=1))
        return f"{day(query.since)} – {last}" if query.since else f"Up to {last}"
    return f"{day(query.since)} – {day(until)}" if query.since else f"Before {day(until)}"
