"""The error answers of the HTTP API, declared once for every router, and the handlers that make
the answers what the declarations say (so ``/openapi.json`` tells the truth).

Every error is ``{"detail": "<what is wrong, in words>"}``: our own refusals, FastAPI's request
validation (which also lists the fields in ``errors``) and Starlette's routing answers alike.
A router declares the errors its routes can give with :func:`errors` (JSON) or
:func:`html_errors` (the pages), instead of describing them again.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field, Tag
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from nurture.store.availability import DATABASE_UNAVAILABLE, unavailable_in_words

log = structlog.get_logger(__name__)
RETRY_DATABASE_AFTER = "30"  # seconds
DATABASE_DOWN = "the engine database is unavailable: send the same request again later"
DATABASE_DOWN_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Please try again</title>"
    "<h1>Please try again</h1><p>Nurture cannot reach its database just now. Please try again "
    "in a minute.</p>"
)


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: 'body', 'query' or 'path', then the field")
    msg: str = Field(description="what is expected")
    type: str


class ApiError(BaseModel):
    """Every refusal of the API."""

    detail: str = Field(description="what is wrong and what is expected, in words")
    errors: list[FieldError] | None = Field(
        default=None, description="request validation only: one entry per field refused"
    )


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read: it is not UTF-8 JSON (or not the JSON expected)",
    401: "No API key, or not a valid one (unknown, revoked or mistyped)",
    403: "Refused: this key's role may not do this, or the signature or link is not valid",
    404: "No such resource (a lead, task, report or campaign by that name)",
    409: "The lead's stage does not allow this action now",
    413: "The body is larger than this endpoint takes",
    422: "A field is missing or not valid: `detail` names it and says what is expected",
    429: "Too many requests from this address or visitor: wait `Retry-After` seconds",
    503: "Temporal or the engine database is unavailable: send the same request again later",
}

UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's 400 for a body not UTF-8
AUTHENTICATED = (401, 403, 503)  # every route behind an API key (looked up in the database)
JSON_BODY = (400, 413, 422)  # every route that reads a JSON body


def errors(*codes: int | Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route for these error statuses (ints or groups of them such as
    :data:`AUTHENTICATED`), all answered as :class:`ApiError`."""
    return {
        code: {"model": ApiError, "description": ERROR_DESCRIPTIONS[code]} for code in _flat(codes)
    }


def errors_or(model: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    """Statuses answered either with ``model`` (a route's own result, such as a batch's per-item
    outcome) or, when the request itself is refused, with :class:`ApiError`."""
    return {
        code: {"model": model | ApiError, "description": ERROR_DESCRIPTIONS[code]} for code in codes
    }


def html_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a page's error statuses: an HTML page saying what went wrong."""
    page = {"text/html": {"schema": {"type": "string"}}}
    return {code: {"description": ERROR_DESCRIPTIONS[code], "content": page} for code in codes}


def also_as(media_type: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A success that may also come as ``media_type`` text (a report's table as CSV)."""
    return {status: {"content": {media_type: {"schema": {"type": "string"}}}}}


def _flat(codes: Iterable[int | Iterable[int]]) -> list[int]:
    flat: list[int] = []
    for code in codes:
        flat.extend([code] if isinstance(code, int) else code)
    return sorted(set(flat))


def field_problems(exc: RequestValidationError) -> list[FieldError]:
    return [
        FieldError(
            # A body that is not JSON is refused at a character position, not at a field.
            loc=["body"] if error["type"] == "json_invalid" else _echoable(error["loc"]),
            msg=_encodable(_expected(error)),
            type=str(error["type"]),
        )
        for error in exc.errors()
    ]


_UNION_TAGS: set[str] = set()


def union_tag(name: str) -> Tag:
    """A tag of a tagged union in a request body. pydantic puts the tag in the location of each
    error inside that member (``body.<tag>.amount``); the client sent ``body.amount``, so the
    answer names that. Name tags so that no field can be called the same (with a space), or a
    field's own errors would lose its name."""
    _UNION_TAGS.add(name)
    return Tag(name)


def _echoable(loc: Sequence[str | int]) -> list[str | int]:
    parts = [part if isinstance(part, int) else _encodable(str(part)) for part in loc]
    if len(parts) >= 2 and parts[0] == "body" and parts[1] in _UNION_TAGS:
        del parts[1]
    return parts


def _encodable(text: str) -> str:
    """What the client sent, as UTF-8 can carry it: a key may hold a lone surrogate (valid
    JSON, not UTF-8), and echoing it as such would make the answer itself a 500."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _expected(error: dict[str, Any]) -> str:
    if error["type"] == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"not valid JSON ({reason} at character {error['loc'][-1]})"
    return str(error["msg"]).removeprefix("Value error, ")


def in_words(problems: list[FieldError]) -> str:
    """``body.reason: String should have at least 3 characters; query.status: …``"""
    return "; ".join(
        f"{'.'.join(str(part) for part in p.loc) or 'request'}: {p.msg}" for p in problems
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = field_problems(exc)
    body = ApiError(detail=in_words(problems) or "the request is not valid", errors=problems)
    return JSONResponse(body.model_dump(mode="json"), status_code=422)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """503, for a page as a page; logged by route, not by path (a path may name a lead)."""
    route = getattr(request.scope.get("route"), "path", "?")
    log.warning("database unavailable", route=route, error=unavailable_in_words(exc))
    headers = {"Retry-After": RETRY_DATABASE_AFTER}
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(DATABASE_DOWN_PAGE, 503, headers)
    return JSONResponse({"detail": DATABASE_DOWN}, 503, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        # Starlette's 405 names the methods of the first route on the path only, but a path may
        # have a route per method (GET and POST /u/{token}): name them all.
        first = (exc.headers or {}).get("Allow", "")
        allowed = ", ".join(allowed_methods(request, {m.strip() for m in first.split(",")}))
        exc = StarletteHTTPException(
            405, f"{request.method} is not allowed here; use {allowed}", {"Allow": allowed}
        )
    elif exc.status_code == 400 and exc.detail == UNREADABLE_BODY:  # FastAPI's own words
        exc = StarletteHTTPException(400, "the body could not be read: send UTF-8 JSON")
    return await http_exception_handler(request, exc)


def allowed_methods(request: Request, known: set[str]) -> list[str]:
    """Every method the app answers on this request's path, by its most specific route
    (``/api/leads/import`` is not ``/api/leads/{lead_id}``), else what Starlette ``known``."""
    by_path: dict[str, set[str]] = {}
    for route in iter_route_contexts(request.app.routes):
        if route.path and route.methods and _path_pattern(route.path).match(request.url.path):
            by_path.setdefault(route.path, set()).update(route.methods)
    if not by_path:
        return sorted(method for method in known if method)
    most_specific = min(by_path, key=lambda path: (path.count("{"), -len(path)))
    return sorted(by_path[most_specific])


@functools.cache
def _path_pattern(path: str) -> re.Pattern[str]:
    return compile_path(path)[0]


REQUEST_SCHEMA = "x-request-schema"


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra=`` of a route that takes its JSON body raw (to validate it item by item):
    the schema its body must have. FastAPI merges ``openapi_extra`` into the generated body
    schema key by key (adding to its ``anyOf``), so :func:`install_api_contract` puts this one
    in place of the generated one instead."""
    return {REQUEST_SCHEMA: schema}


def one_or_many(item: dict[str, Any], max_items: int) -> dict[str, Any]:
    """A body of one ``item`` or an array of up to ``max_items`` of them."""
    return {"anyOf": [item, {"type": "array", "items": item, "maxItems": max_items}]}


def _with_declared_bodies(spec: dict[str, Any]) -> dict[str, Any]:
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            schema = operation.pop(REQUEST_SCHEMA, None)
            if schema is not None:
                body = _defs_as_components(copy.deepcopy(schema), spec)
                # A route that reads its body raw declares no body parameter: FastAPI then
                # writes no requestBody at all.
                declared = operation.setdefault("requestBody", {"required": True})
                declared.setdefault("content", {})["application/json"] = {"schema": body}
    return spec


DEFS_REF = "#/$defs/"
COMPONENTS_REF = "#/components/schemas/"


def _defs_as_components(schema: Any, spec: dict[str, Any]) -> Any:
    """A declared body's nested models (pydantic's ``$defs``, referred to as ``#/$defs/X``,
    which does not resolve inside the spec) moved to ``components/schemas``, as FastAPI puts
    the nested models of the bodies it generates. A model whose edge schema differs from the
    one already there (``ConsentGiven``, with its edge bounds) is ``X-Input``, FastAPI's name
    for a request's variant of a model."""
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    names: dict[str, str] = {}
    found: dict[str, Any] = {}
    _pop_defs(schema, found)
    for name, definition in found.items():
        taken = components.get(name)
        names[name] = name if taken in (None, definition) else f"{name}-Input"
        if components.get(names[name], definition) != definition:
            raise ValueError(f"two request schemas named {names[name]!r} differ")
    for name, definition in found.items():
        components[names[name]] = _refs_to_components(definition, names)
    return _refs_to_components(schema, names)


def _pop_defs(schema: Any, found: dict[str, Any]) -> None:
    if isinstance(schema, dict):
        found.update(schema.pop("$defs", {}))
        for value in schema.values():
            _pop_defs(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _pop_defs(value, found)


def _refs_to_components(schema: Any, names: dict[str, str]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFS_REF):
            return {**schema, "$ref": COMPONENTS_REF + names[ref.removeprefix(DEFS_REF)]}
        return {key: _refs_to_components(value, names) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_refs_to_components(value, names) for value in schema]
    return schema


def install_api_contract(app: FastAPI) -> None:
    """Answer every refusal as :class:`ApiError` (an unreachable database as 503), and serve
    the request bodies routes declare with :func:`json_body`: what ``/openapi.json`` says is
    what the service does."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return _with_declared_bodies(generate())  # generate() caches; the rewrite is idempotent

    app.openapi = openapi  # type: ignore[method-assign]
