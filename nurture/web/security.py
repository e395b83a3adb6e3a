"""API-key authentication and role checks for the HTTP API (see :mod:`nurture.access.auth`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nurture.access.auth import Principal, Role, authenticate

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


def _caller(request: Request) -> Principal:
    """The principal the route's :func:`requires` dependency authenticated (route
    dependencies are solved before the handler's parameters)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise RuntimeError(f"{request.url.path}: a handler asks for its caller without requires()")
    return principal


Caller = Annotated[Principal, Depends(_caller)]
"""A handler's parameter: who is calling, on a route that ``requires`` a role."""


# --- pages people open in a browser -----------------------------------------------------------

# Every HTML page carries a token in its URL (inbox, dashboard, unsubscribe) and shows a lead's
# or a rep's data: never cached, never sent on as a referrer, never framed (clickjacking of the
# Accept/Reject/Unsubscribe buttons), never indexed.
PAGE_HEADERS: dict[str, str] = {
    "Cache-Control": "private, no-store",
    # Not no-referrer: browsers then send "Origin: null" with our own forms. same-origin
    # sends the URL (its token) to nobody else.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


class PageSecurityHeaders:
    """ASGI middleware: :data:`PAGE_HEADERS` on every ``text/html`` response, whichever router
    made it, so no page can forget them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in PAGE_HEADERS.items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CrossSiteRequestError(Exception):
    """A browser sent this POST from another site's page."""


def refuse_cross_site(request: Request, public_url: str | None = None) -> None:
    """Raise :class:`CrossSiteRequestError` when a browser says the form was posted from
    another site's page. Browsers that send ``Sec-Fetch-Site`` are believed: only
    ``same-origin`` (our own page) and ``none`` (the user's own doing) pass. Older ones are
    judged by ``Origin``: this host or ``public_url`` (behind a proxy). A request with
    neither header (curl, a mailbox provider's RFC 8058 one-click unsubscribe) is not a
    browser's and is let through."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise CrossSiteRequestError("this form was sent from another site")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {_origin_of(str(request.base_url))}
    if public_url:
        allowed.add(_origin_of(public_url))
    if origin.rstrip("/").lower() not in allowed:  # "null" too: an opaque origin
        raise CrossSiteRequestError("this form was sent from another site")


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
