"""The website tracker's endpoints (docs/tracking.md): ``GET /t.js``, ``POST /t/{site_key}``
(events) and ``POST /t/{site_key}/identify``. Public: a site key and one of its origins are
the only credentials, and all they allow is sending what a page of the site shows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from nurture.client.ingest import unknown_event_type
from nurture.client.visits import Recorded, VisitRefused, Visits, VisitsUnavailable
from nurture.domain.visits import IdentifyRequest, TrackRequest
from nurture.web.responses import errors, json_body
from nurture.web.site_gate import SiteGate, cors_headers

log = structlog.get_logger(__name__)

TRACKER_FILE = Path(__file__).parent / "static" / "t.js"
TRACKER_MAX_AGE = 3600
TRACKING_BODY_MAX = 64 * 1024
"""A call of the tracker: up to 50 events, or an identification."""
M = TypeVar("M", bound=BaseModel)


class Stored(BaseModel):
    stored: int
    dropped: int


class Identified(BaseModel):
    identified: bool


@dataclass
class TrackingApi:
    gate: SiteGate
    visits: Visits
    known_event_types: Callable[[], set[str] | None]

    def router(self) -> APIRouter:
        router = APIRouter(tags=["website"])
        router.add_api_route(
            "/t.js",
            self.tracker,
            methods=["GET"],
            summary="The website tracker (docs/tracking.md)",
            responses={200: {"content": {"text/javascript": {"schema": {"type": "string"}}}}},
            response_class=Response,
        )
        refusals = {
            204: {
                "description": "Not stored: a bot, Global Privacy Control, Do Not Track, "
                "or consent not granted"
            },
            **errors(400, 403, 413, 422, 429, 503),
        }
        router.add_api_route(
            "/t/{site_key}",
            self.events,
            methods=["POST"],
            status_code=202,
            response_model=Stored,
            responses=refusals,
            openapi_extra=json_body(TrackRequest.model_json_schema()),
            summary="Events of a website visitor (public: the site key and its origins)",
        )
        router.add_api_route(
            "/t/{site_key}/identify",
            self.identify,
            methods=["POST"],
            response_model=Identified,
            responses=refusals,
            openapi_extra=json_body(IdentifyRequest.model_json_schema()),
            summary="Who a website visitor is: an email, a lead id or a signed email-link token",
        )
        for path in ("/t/{site_key}", "/t/{site_key}/identify"):
            router.add_api_route(
                path, self.gate.preflight, methods=["OPTIONS"], include_in_schema=False
            )
        return router

    async def tracker(self, request: Request) -> Response:
        body = TRACKER_FILE.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        headers = {
            "Cache-Control": f"public, max-age={TRACKER_MAX_AGE}",
            "ETag": etag,
            "Access-Control-Allow-Origin": "*",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)

    async def events(self, request: Request, site_key: str) -> Response:
        site, origin = await self.gate.site(request, site_key)
        call = await self._read(request, TrackRequest, origin)
        if not self.gate.may_track(request, site, call.consent):
            return Response(status_code=204, headers=cors_headers(origin))
        await self.gate.within_limits(request, origin, call.visitor)
        known = self.known_event_types()
        for index, event in enumerate(call.events):
            problem = unknown_event_type(event.as_lead_event(), known)
            if problem:
                raise _refused(origin, ["body", "events", index, "type"], problem)
        try:
            recorded = await self.visits.record(
                site, call.visitor, call.events, self.gate.place(request)
            )
        except VisitsUnavailable as exc:
            raise _unavailable(origin, str(exc)) from None
        return _answer(origin, _stored(recorded), 202)

    async def identify(self, request: Request, site_key: str) -> Response:
        site, origin = await self.gate.site(request, site_key)
        call = await self._read(request, IdentifyRequest, origin)
        if not self.gate.may_track(request, site, call.consent):
            return Response(status_code=204, headers=cors_headers(origin))
        await self.gate.within_limits(request, origin, call.visitor)
        try:
            await self.visits.identify(
                site,
                call.visitor,
                token=call.token,
                lead_id=call.lead_id,
                profile=call.profile_fields(),
                place=self.gate.place(request),
            )
        except VisitRefused as exc:
            raise _refused(origin, ["body", exc.field], str(exc)) from None
        except VisitsUnavailable as exc:
            raise _unavailable(origin, str(exc)) from None
        return _answer(origin, Identified(identified=True), 200)

    @staticmethod
    async def _read(request: Request, model: type[M], origin: str) -> M:
        raw = await request.body()
        try:
            data: Any = json.loads(raw)
        except (ValueError, RecursionError):
            raise HTTPException(400, "the body is not JSON", headers=cors_headers(origin)) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = ["body", *error["loc"]]
            raise _refused(origin, loc, str(error["msg"]).removeprefix("Value error, ")) from None


def _stored(recorded: Recorded) -> Stored:
    return Stored(stored=recorded.kept + recorded.delivered, dropped=recorded.dropped)


def _answer(origin: str, body: BaseModel, status: int) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=status, headers=cors_headers(origin))


def _refused(origin: str, loc: list[Any], message: str) -> HTTPException:
    where = ".".join(str(p) for p in loc[1:])
    detail = f"{where}: {message}" if where else message
    return HTTPException(422, detail, headers=cors_headers(origin))


def _unavailable(origin: str, message: str) -> HTTPException:
    return HTTPException(
        503, f"not stored, retry: {message}", headers={**cors_headers(origin), "Retry-After": "5"}
    )
