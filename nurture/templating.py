"""Email rendering with Jinja2: sandboxed, strict about undefined variables, errors with
file:line and the missing name, and a check that renders every template before any lead does.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from nurture.rules import Rules

NOTIFICATION_KINDS = ("handoff", "reassigned", "escalation", "activity")


class TemplateProblem(Exception):
    """A template that cannot render; the message says file:line and what is wrong."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def make_environment(templates_dir: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html", "htm"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_email(
    env: SandboxedEnvironment, template: str, subject: str, context: dict[str, Any]
) -> RenderedEmail:
    """Render subject and HTML body; the text part is the HTML's text, or ``<name>.txt``."""
    try:
        rendered_subject = env.from_string(subject).render(context).strip()
    except TemplateError as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise TemplateProblem(f"subject {subject!r}: {message}") from exc
    try:
        html = env.get_template(template).render(context)
        text_name = template.rsplit(".", 1)[0] + ".txt"
        try:
            text = env.get_template(text_name).render(context)
        except TemplateNotFound:
            text = html_to_text(html)
    except TemplateError as exc:
        raise TemplateProblem(describe_template_error(exc, template)) from exc
    return RenderedEmail(subject=" ".join(rendered_subject.split()), html=html, text=text)


def render_text(env: SandboxedEnvironment, source: str, context: dict[str, Any], what: str) -> str:
    """Render a short Jinja text (a task title or instructions) from the cadence file."""
    try:
        return env.from_string(source).render(context).strip()
    except TemplateError as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise TemplateProblem(f"{what} {source[:60]!r}: {message}") from exc


def describe_template_error(exc: TemplateError, template: str) -> str:
    if isinstance(exc, TemplateNotFound):
        return f"templates/{exc.name}: template file not found"
    if isinstance(exc, TemplateSyntaxError):
        return f"templates/{exc.name or template}:{exc.lineno}: syntax error: {exc.message}"
    where = f"templates/{template}"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((".html", ".txt")) and frame.lineno:
            name = frame.filename.split("templates/", 1)[-1]
            where = f"templates/{name}:{frame.lineno}"
            break
    if isinstance(exc, UndefinedError):
        return f"{where}: undefined variable: {exc.message}"
    return f"{where}: {exc}"


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "table"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.parts.append(f"[{href}] ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def sample_contexts(kind: str) -> list[dict[str, Any]]:
    """What a template of this kind gets at send time, for a full profile and a bare one.

    Only the variables the engine really passes for that kind are defined, so a cadence
    template that uses ``rep`` fails the check instead of a lead's send.
    """
    story = {
        "campaign": "webinar-2026",
        "qualified_by": "score 105 reached threshold 100 on email_click",
        "score": 105,
        "grade": "A",
        "fit": {"senior title": 15},
        "top_behaviours": [["form_fill", 25, 1], ["page_view", 12, 6]],
        "recent": [
            {
                "at": "2026-11-24T10:00:00Z",
                "rule": "email_click",
                "points": 8,
                "event_type": "email_click",
                "detail": None,
            }
        ],
    }
    links = {
        "inbox_url": "https://nurture.example/inbox/sample",
        "accept_url": "https://nurture.example/inbox/sample/accept",
        "reject_url": "https://nurture.example/inbox/sample/reject",
    }
    rep: dict[str, Any] = {
        "id": "rep",
        "name": "Sam Rep",
        "email": "sam@example.com",
        "region": "EMEA",
        "industries": [],
        "manager": None,
    }
    full_lead = {
        "lead_id": "sample-1",
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "title": "VP Engineering",
        "company_size": 800,
        "industry": "software",
        "region": "EMEA",
        "country": "GB",
        "budget": 50000,
        "timeframe": "0-3 months",
        "campaign": "webinar-2026",
        "timezone": "Europe/London",
        "phone": "+44 20 7946 0000",
        "address": "1 Engine Row, London",
        "custom": {},
        "display_name": "Ada Lovelace",
    }
    bare_lead = {key: None for key in full_lead} | {
        "lead_id": "sample-2",
        "email": "someone@example.com",
        "custom": {},
        "display_name": "someone@example.com",
    }
    base: dict[str, Any] = {
        "score": 42,
        "grade": "B",
        "stage": "nurturing",
        "owner": None,
        "story": story,
        "sla_due_at": "2026-11-24T14:00:00+00:00",
    }
    base |= KIND_EXTRAS[kind](rep)
    if "rep" in base:  # alerts to reps carry their signed links
        base |= links
    return [{**base, "lead": full_lead}, {**base, "lead": bare_lead, "story": None}]


KIND_EXTRAS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "touch": lambda rep: {
        "step": "welcome",
        "cadence": "sample",
        "cycle": 1,
        "unsubscribe_url": "https://nurture.example/u/sample-token",
    },
    "task": lambda rep: {"step": "call", "cadence": "sample", "cycle": 1},
    "handoff": lambda rep: {"rep": rep},
    "reassigned": lambda rep: {"rep": rep, "missed_by": "rep0", "miss_number": 1},
    "escalation": lambda rep: {
        "rep": rep,
        "missed_by": "rep0",
        "miss_number": 2,
        "reassigned_to": None,
    },
    "activity": lambda rep: {"rep": rep, "activity": ["2026-11-24 10:00 page_view /pricing"]},
}


def template_problems(rules: Rules, templates_dir: Path) -> list[str]:
    """Render every cadence step and notification against sample leads; list what fails."""
    env = make_environment(templates_dir)
    problems: dict[str, None] = {}
    jobs = [
        (step.template, step.subject, "touch", f"cadence {c.id} step {step.name}")
        for c in rules.cadences.cadences
        for step in c.steps
        if step.template is not None and step.subject is not None
    ] + [
        (f"notifications/{kind}.html", "Notification", kind, "notification")
        for kind in NOTIFICATION_KINDS
    ]
    for template, subject, kind, owner in jobs:
        for context in sample_contexts(kind):
            try:
                render_email(env, template, subject, context)
            except TemplateProblem as exc:
                problems[f"{exc} (used by {owner})"] = None
    for cad in rules.cadences.cadences:
        for step in cad.steps:
            if step.title is None:
                continue
            for context in sample_contexts("task"):
                for what, text in (("title", step.title), ("instructions", step.instructions)):
                    try:
                        render_text(env, text, context, what)
                    except TemplateProblem as exc:
                        problems[f"cadences.yaml: cadence {cad.id} step {step.name}: {exc}"] = None
    return list(problems)
