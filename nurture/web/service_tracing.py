"""Spans of the HTTP service's requests (``opentelemetry-instrumentation-fastapi``), the first
span of an event's trace (``nurture.runtime.tracing``). A span names its route by template
(``GET /dashboard/{token}``) and never keeps the path or query a caller sent: signed links
carry tokens, and paths carry lead ids."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

RAW_URL_ATTRIBUTES = ("http.target", "http.url", "url.path", "url.full", "url.query")


def trace_requests(app: FastAPI, provider: TracerProvider) -> None:
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls="/metrics,/healthz",  # scrapes and probes: noise
        server_request_hook=_route_only,
        exclude_spans=["receive", "send"],  # the ASGI messages' own spans: noise too
    )


def _route_only(span: Span, scope: dict[str, Any]) -> None:
    """Replace what the caller sent with the route's template."""
    if not span.is_recording():
        return
    route = getattr(scope.get("route"), "path", None) or "(no route)"
    for name in RAW_URL_ATTRIBUTES:
        span.set_attribute(name, route if name != "url.query" else "")
