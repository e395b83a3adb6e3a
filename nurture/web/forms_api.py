"""Website forms: ``POST /f/{site_key}/{form}`` (docs/tracking.md, "Forms").

Two ways in, both from the site's own origins only: a plain HTML form posting to us (answered
with a redirect to the form's thank-you page, or a page naming each bad field), and the
tracker's JSON copy of a form that posts elsewhere (answered with JSON). A post creates or
updates the lead holding its address, records consent when the box is ticked, joins the
visitor's anonymous visits to the lead, then records the form's event: in that order, each
step one a retry repeats without counting twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment
from pydantic import BaseModel, ValidationError

from nurture.client.visits import VisitRefused, Visits, VisitsUnavailable
from nurture.config.forms import VISITOR_FIELD, FormBook, WebForm
from nurture.domain.leads import URL_MAX, LeadEvent, LeadProfile, check_plain_text
from nurture.domain.visits import FORM_FIELDS_MAX, PENDING_LEAD, TRACKER_ID_PATTERN, FormCapture
from nurture.store.clock import utcnow
from nurture.store.tracking import Place
from nurture.web.form_fields import (
    FieldProblem,
    FormFields,
    FormValues,
    form_event_id,
    honeypot_filled,
    read_form,
)
from nurture.web.responses import errors
from nurture.web.site_gate import SiteGate, cors_headers, request_origin

log = structlog.get_logger(__name__)

PLAIN_POSTS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
"""What an HTML form sends; anything else is read as the tracker's JSON."""
FILES_MAX = 20
"""A form with file inputs posts them too: read past, never kept."""
RETRY_AFTER_SECONDS = 5


class FormAccepted(BaseModel):
    ok: bool
    redirect: str


class FormFieldError(BaseModel):
    field: str
    msg: str


class FormRefused(BaseModel):
    detail: str
    errors: list[FormFieldError]


class FieldsRefused(Exception):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.msg}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Submission:
    """A post as sent, before its form reads it."""

    values: FormValues
    visitor: str | None
    consent: str | None
    page: str | None
    """the page the form was on, as the tracker says it"""


@dataclass
class FormsApi:
    gate: SiteGate
    visits: Visits
    forms: Callable[[], FormBook]
    pages: Environment
    clock: Callable[[], datetime] = utcnow

    def router(self) -> APIRouter:
        router = APIRouter(tags=["website"])
        as_text = {"text/plain": {"schema": {"type": "string"}}}
        html = {"text/html": {"schema": {"type": "string"}}}
        plain_schema = {"type": "object", "additionalProperties": {"type": "string"}}
        router.add_api_route(
            "/f/{site_key}/{form}",
            self.post,
            methods=["POST"],
            response_model=FormAccepted,
            summary="A website form (public: the site key and its origins; docs/tracking.md)",
            description="A plain HTML form post (urlencoded or multipart) is answered with 303 "
            "to the form's thank-you page, or an HTML page naming each bad field; the "
            "tracker's JSON copy of a form with JSON.",
            responses={
                303: {"description": "a plain form post: on to the form's thank-you page"},
                422: {
                    "model": FormRefused,
                    "description": "Fields of the post are not valid: each is named as the "
                    "form names it, with what is expected (an HTML page for a plain post)",
                    "content": html,
                },
                **{
                    code: {**answer, "content": html}
                    for code, answer in errors(400, 403, 404, 413, 429, 503).items()
                },
            },
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": FormCapture.model_json_schema()},
                        "application/x-www-form-urlencoded": {"schema": plain_schema},
                        "multipart/form-data": {"schema": plain_schema},
                        **as_text,
                    },
                }
            },
        )
        router.add_api_route(
            "/f/{site_key}/{form}",
            self.gate.preflight,
            methods=["OPTIONS"],
            include_in_schema=False,
        )
        return router

    async def post(self, request: Request, site_key: str, form: str) -> Response:
        plain = _media_type(request) in PLAIN_POSTS
        try:
            return await self._post(request, site_key, form, plain)
        except FieldsRefused as exc:
            origin = request_origin(request)  # the site's: checked before any field is read
            if plain:
                return self._page(
                    request,
                    422,
                    "Please check the form",
                    "Nothing was saved: please correct "
                    + ("this field" if len(exc.problems) == 1 else "these fields")
                    + " and send the form again.",
                    exc.problems,
                    cors_headers(origin),
                )
            body = FormRefused(
                detail=str(exc),
                errors=[FormFieldError(field=p.field, msg=p.msg) for p in exc.problems],
            )
            return JSONResponse(body.model_dump(), 422, headers=cors_headers(origin))
        except HTTPException as exc:
            if not plain:
                raise
            headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "connection"}
            return self._page(
                request, exc.status_code, "The form was not sent", str(exc.detail), [], headers
            )

    async def _post(self, request: Request, site_key: str, name: str, plain: bool) -> Response:
        site, origin = await self.gate.site(request, site_key)
        form = self.forms().form(name)
        if form is None:
            raise HTTPException(
                404, f"no form {name!r} (config/forms.yaml names them)", cors_headers(origin)
            )
        sent = await (_plain_post(request) if plain else _captured(request, origin))
        await self.gate.within_limits(request, origin, sent.visitor, form=True)
        answer = _success(form.thank_you_url(origin), origin, plain)
        if self.gate.is_bot(request) or honeypot_filled(form, sent.values):
            log.info("form post from a bot dropped", form=form.name, site=site.name)
            return answer
        fields = read_form(form, sent.values)
        if isinstance(fields, list):
            raise FieldsRefused(fields)
        now, place = self.clock(), self.gate.place(request)
        profile = _profile(form, fields, now, place)
        # The post itself is the person's say: it is applied whatever the tracking consent;
        # their visits are joined to it only where the visit itself may be kept.
        visitor = sent.visitor if self.gate.may_track(request, site, sent.consent) else None
        page = _page_url(origin, sent.page) or _page_url(origin, request.headers.get("referer"))
        try:
            lead = await self.visits.identify(site, visitor, profile=profile, place=place)
            event = LeadEvent(
                lead_id=lead,
                type=form.event,
                at=now,
                url=page,
                props={"form": form.name, "site": site.name},
                event_id=form_event_id(site.site_key, form.name, lead, fields, now),
            )
            await self.visits.send(event)
        except VisitRefused as exc:
            field = form.email_field if exc.field == "email" else exc.field or "form"
            raise FieldsRefused([FieldProblem(field, str(exc))]) from None
        except VisitsUnavailable as exc:
            raise HTTPException(
                503,
                f"not sent, please try again in a moment: {exc}",
                {**cors_headers(origin), "Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        log.info("form received", form=form.name, site=site.name, lead_id=lead)
        return answer

    def _page(
        self,
        request: Request,
        status: int,
        title: str,
        message: str,
        problems: list[FieldProblem],
        headers: dict[str, str],
    ) -> HTMLResponse:
        """An answer a person reads, with a link back to the page the form was on."""
        html = self.pages.get_template("form_refused.html").render(
            title=title,
            message=message,
            problems=problems,
            back=_back_link(request.headers.get("referer")),
        )
        return HTMLResponse(html, status, headers=headers)


async def _plain_post(request: Request) -> Submission:
    values: dict[str, list[object]] = {}
    async with request.form(max_files=FILES_MAX, max_fields=FORM_FIELDS_MAX) as form:
        for key, value in form.multi_items():
            if isinstance(value, str):  # files are read past
                values.setdefault(key, []).append(value)
    visitors = values.pop(VISITOR_FIELD, [])
    visitor = next((v for v in visitors if isinstance(v, str)), None)
    # The tracker wrote it; a person cannot fix a bad one: the form works without it.
    valid = visitor is not None and _matches(TRACKER_ID_PATTERN, visitor)
    return Submission(values, visitor if valid else None, None, None)


async def _captured(request: Request, origin: str) -> Submission:
    raw = await request.body()
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPException(
            400,
            "the body is not JSON (a plain form post is application/x-www-form-urlencoded "
            "or multipart/form-data)",
            cors_headers(origin),
        ) from None
    try:
        capture = FormCapture.model_validate(data)
    except ValidationError as exc:
        raise FieldsRefused(
            [
                FieldProblem(
                    ".".join(str(p) for p in error["loc"]) or "body",
                    str(error["msg"]).removeprefix("Value error, "),
                )
                for error in exc.errors()
            ]
        ) from None
    values: dict[str, list[object]] = {}
    for key, value in capture.fields.items():
        items = value if isinstance(value, list) else [value]
        values[key] = [_as_text(item) for item in items if item is not None and item is not False]
    return Submission(values, capture.visitor, capture.consent, capture.url)


def _as_text(value: object) -> object:
    """A captured value as a plain post would carry it: a number as its text (a checkbox's
    ``true`` stays itself: ticked, and no text for a field that wants some)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _profile(form: WebForm, fields: FormFields, now: datetime, place: Place) -> LeadProfile:
    """The lead's update: the fields filled in, and consent when the box is ticked (what the
    person was shown, when, and from which address as kept)."""
    data: dict[str, Any] = {"lead_id": PENDING_LEAD, **fields.profile}
    if form.consent is not None and fields.consent_ticked:
        data["consent"] = {
            "source": "form",
            "text": form.consent.text,
            "version": form.consent.version,
            "at": now,
            "ip": place.ip,
        }
    try:
        return LeadProfile.from_edge(data)
    except ValidationError as exc:  # the fields passed one by one: the consent's evidence
        field = form.consent.field if form.consent else "form"
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise FieldsRefused([FieldProblem(field, message)]) from None


def _success(url: str, origin: str, plain: bool) -> Response:
    if plain:
        return RedirectResponse(url, 303, headers=cors_headers(origin))
    body = FormAccepted(ok=True, redirect=url)
    return JSONResponse(body.model_dump(), 200, headers=cors_headers(origin))


def _page_url(origin: str, url: str | None) -> str | None:
    """``url`` if it is a page of ``origin`` a lead can keep (the event's url), else None."""
    if not url or len(url) > URL_MAX or _origin_of(url) != origin:
        return None
    try:
        return check_plain_text(url)
    except ValueError:
        return None


def _back_link(referer: str | None) -> str | None:
    return referer if referer and _origin_of(referer) and len(referer) <= URL_MAX else None


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None
