"""OpenTelemetry traces: one behaviour event followed from the HTTP edge (the request's span)
through the signal to its lead, the lead's workflow and the activities it runs, as one trace.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: spans go there over OTLP/HTTP, with the
standard variables (``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_HEADERS``…). The pieces are
the libraries' own: ``temporalio.contrib.opentelemetry`` on the Temporal client (its workers
inherit it) and ``opentelemetry-instrumentation-fastapi`` on the HTTP service. The provider
is handed to both rather than installed globally, so a process (or a test) can hold its own.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"


def tracer_provider_from_env(service: str) -> TracerProvider | None:
    """A provider exporting to the OTLP endpoint of the environment (None: tracing off)."""
    if not os.environ.get(ENDPOINT_ENV, "").strip():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracing_interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """What a Temporal client needs to trace its calls and its workers' workflows and
    activities with ``provider`` (nothing without one)."""
    if provider is None:
        return []
    return [TracingInterceptor(provider.get_tracer("nurture"))]
