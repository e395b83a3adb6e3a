"""API-key authentication and role checks for the HTTP API (see :mod:`nurture.auth`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from nurture.auth import Principal, Role, authenticate

# Declared for the OpenAPI spec; checked by hand below so both header styles work.
BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer nk_…")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def requires(engine: Engine, *roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller's principal, if its key is valid (else 401) and its role is
    one of ``roles`` (else 403)."""

    async def dependency(
        request: Request,
        _bearer: object = Security(BEARER),  # in the spec: either header carries the key
        _api_key: object = Security(API_KEY),
    ) -> Principal:
        key = presented_key(request)
        if not key:
            raise HTTPException(
                401,
                "an API key is required: 'Authorization: Bearer nk_…' (create one with "
                "'nurture keys create')",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await run_in_threadpool(authenticate, engine, key)
        if principal is None:
            raise HTTPException(
                401,
                "this API key is not valid (unknown, revoked or mistyped)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in roles:
            raise HTTPException(
                403, f"the {principal.role!r} role may not do this; it needs one of {list(roles)}"
            )
        request.state.principal = principal
        return principal

    return dependency
