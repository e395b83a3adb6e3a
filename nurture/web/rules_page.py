"""The rules history page: every rules version the workers loaded, who changed it and what
changed, and which version is live (opened with the dashboard's signed link)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from nurture.access.dashboard_links import DashboardLinks
from nurture.reports.dashboard import rules_notice, rules_status
from nurture.store.rules_history import rules_history
from nurture.web.dashboard import verified_link


@dataclass
class RulesHistoryPage:
    engine: Engine
    links: DashboardLinks
    pages: Environment

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(
            "/dashboard/{token}/rules", self.page, methods=["GET"], include_in_schema=False
        )
        return router

    async def page(self, token: str) -> HTMLResponse:
        refused = verified_link(self.links, self.pages, token)
        if isinstance(refused, HTMLResponse):
            return refused
        versions = await run_in_threadpool(rules_history, self.engine)
        status = await run_in_threadpool(rules_status, self.engine)
        html = self.pages.get_template("rules_history.html").render(
            token=token,
            versions=versions,
            live=status.version if status else None,
            notice=rules_notice(status),
        )
        return HTMLResponse(html)
