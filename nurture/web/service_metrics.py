"""``GET /metrics`` of the HTTP service: requests, their status and duration per route, in the
Prometheus format (``prometheus-fastapi-instrumentator``). Routes are named by their template
(``/dashboard/{token}``), never by the path a caller sent, so no token or id reaches a label.

Only an operator key may read it (``Authorization: Bearer nk_…``; Prometheus sends one with
``authorization: {credentials_file: …}``): the service faces the internet for the tracker and
the forms, and its traffic is nobody else's business."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy.engine import Engine

from nurture.web.security import requires

METRICS_PATH = "/metrics"


def serve_metrics(app: FastAPI, engine: Engine) -> None:
    """Count every request of ``app`` and serve the counts at :data:`METRICS_PATH`."""
    instrumentator = Instrumentator(
        should_ignore_untemplated=True,  # a 404's path is the caller's text: not a label
        excluded_handlers=[METRICS_PATH],
        registry=CollectorRegistry(),  # one per app: a process may run several (the tests)
    )
    instrumentator.instrument(app).expose(
        app,
        endpoint=METRICS_PATH,
        include_in_schema=False,
        dependencies=[Depends(requires(engine, "operator"))],
    )
