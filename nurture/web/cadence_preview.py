"""The cadence preview: each cadence's timeline and every email of it rendered, for a sample
profile or for a real lead, on pages opened with the dashboard's signed link.

An email's HTML is shown in a sandboxed frame (``srcdoc``, no scripts, no same origin: what a
template writes can neither run nor reach the page), its text part beside it. The templates
are those in force (the version the workers send from); an edit the workers refused is named
with its file, line and message above the timeline, and an email that cannot be rendered for
the chosen lead shows why, with the template's file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from nurture.access.dashboard_links import DashboardLinks
from nurture.client.sales import LeadActionError, read_state
from nurture.config.config_loader import RuleSet
from nurture.config.templating import (
    KIND_EXTRAS,
    TemplateProblem,
    render_email,
    render_text,
    sample_contexts,
)
from nurture.core.context import step_context
from nurture.domain.cadence_timeline import cadence_timeline
from nurture.domain.rules import Cadence, EmailVersion
from nurture.reports.dashboard import rules_notice, rules_status
from nurture.reports.tables import LEAD
from nurture.web.dashboard import message_page, verified_link

log = structlog.get_logger(__name__)

SAMPLES = ("a full profile (sample)", "a bare profile: an address only (sample)")
RECENT_LEADS = 25
"""How many of the newest leads the page offers to render for."""


@dataclass
class EmailPreview:
    step: str
    cycle: int
    variant: str | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    problem: str | None = None


@dataclass
class CadencePreviewPages:
    client: Client
    engine: Engine
    links: DashboardLinks
    pages: Environment
    rules: Callable[[], RuleSet]

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(
            "/dashboard/{token}/cadences", self.index, methods=["GET"], include_in_schema=False
        )
        router.add_api_route(
            "/dashboard/{token}/cadences/{cadence_id}",
            self.preview,
            methods=["GET"],
            include_in_schema=False,
        )
        return router

    async def index(self, token: str) -> HTMLResponse:
        if isinstance(refused := verified_link(self.links, self.pages, token), HTMLResponse):
            return refused
        rule_set = self.rules()
        book = rule_set.rules.cadences
        return self._render(
            "cadences.html",
            token=token,
            timelines=[cadence_timeline(book, c) for c in book.cadences],
            notice=rules_notice(await run_in_threadpool(rules_status, self.engine)),
        )

    async def preview(
        self, token: str, cadence_id: str, sample: int = 0, lead: str | None = None
    ) -> HTMLResponse:
        if isinstance(refused := verified_link(self.links, self.pages, token), HTMLResponse):
            return refused
        rule_set = self.rules()
        book = rule_set.rules.cadences
        cadence = next((c for c in book.cadences if c.id == cadence_id), None)
        if cadence is None:
            message = f"There is no cadence {cadence_id!r}."
            return message_page(self.pages, 404, "No such cadence", message)
        leads = await run_in_threadpool(self._recent_leads)
        chosen, contexts = await self._contexts(cadence, sample, lead if lead in leads else None)
        emails = [
            self._email(rule_set, step.name, version, cycle, contexts)
            for cycle in range(1, cadence.cycles + 1)
            for step in cadence.steps
            for version in step.versions()
        ]
        tasks = {
            step.name: self._task_title(rule_set, step.title or "", contexts(1, step.name))
            for step in cadence.steps
            if step.channel != "email"
        }
        return self._render(
            "cadence_preview.html",
            token=token,
            timeline=cadence_timeline(book, cadence),
            emails=emails,
            subjects={
                f"{e.cycle}:{e.step}:{e.variant or ''}": e.subject for e in emails if e.subject
            },
            tasks=tasks,
            samples=list(enumerate(SAMPLES)),
            leads=leads,
            chosen=chosen,
            sample=sample,
            lead=lead if lead in leads else None,
            notice=rules_notice(await run_in_threadpool(rules_status, self.engine)),
        )

    # --- rendering ------------------------------------------------------------------------

    async def _contexts(
        self, cadence: Cadence, sample: int, lead: str | None
    ) -> tuple[str, Callable[[int, str], dict[str, Any]]]:
        """Who the emails are rendered for, and each step's context for them (what the worker
        passes at send time, the unsubscribe links made up)."""
        links = KIND_EXTRAS["touch"]({})
        if lead is not None:
            try:
                state = await read_state(self.client, lead)
            except (LeadActionError, RPCError) as exc:
                log.warning("preview lead unreadable", lead_id=lead, error=str(exc))
            else:
                return f"lead {lead}", lambda cycle, step: {
                    **step_context(state, cadence.id, cycle, step),
                    "unsubscribe_url": links["unsubscribe_url"],
                    "preferences_url": links["preferences_url"],
                }
        index = sample if 0 <= sample < len(SAMPLES) else 0
        base = sample_contexts("touch")[index]
        return SAMPLES[index], lambda cycle, step: {
            **base,
            "cadence": cadence.id,
            "cycle": cycle,
            "step": step,
        }

    @staticmethod
    def _email(
        rule_set: RuleSet,
        step: str,
        version: EmailVersion,
        cycle: int,
        contexts: Callable[[int, str], dict[str, Any]],
    ) -> EmailPreview:
        shown = EmailPreview(step=step, cycle=cycle, variant=version.variant)
        if rule_set.templates is None:
            shown.problem = "no templates loaded"
            return shown
        context = contexts(cycle, step)
        if version.variant is not None:
            context["variant"] = version.variant
        try:
            email = render_email(
                rule_set.templates.environment, version.template, version.subject, context
            )
        except TemplateProblem as exc:
            shown.problem = str(exc)
            return shown
        shown.subject, shown.html, shown.text = email.subject, email.html, email.text
        return shown

    @staticmethod
    def _task_title(rule_set: RuleSet, title: str, context: dict[str, Any]) -> str:
        if rule_set.templates is None:
            return title
        try:
            return render_text(rule_set.templates.environment, title, context, "title")
        except TemplateProblem as exc:
            return f"(cannot be rendered: {exc})"

    # --- plumbing -------------------------------------------------------------------------

    def _recent_leads(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(LEAD.c.lead_id).order_by(LEAD.c.created_at.desc()).limit(RECENT_LEADS)
            )
            return list(rows.scalars())

    def _render(self, name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.pages.get_template(name).render(**context))
