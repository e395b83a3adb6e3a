"""An event traced from the HTTP edge through the lead's workflow and its activities (issue
18), in an in-memory exporter: ``POST /api/events`` and its signal to the lead in the request's
trace; in the lead's trace, the signal's handling (linked to that request) and the routing and
email activities of the handoff it caused. No span keeps a signed link's token or a person's
address."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nurture.access.auth import create_key
from nurture.access.dashboard_links import DashboardLinks
from nurture.runtime.tracing import tracing_interceptors
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from tests.conftest import TEST_SECRET, lead_id, running_engine, wait_until


def attributes_text(spans: tuple[ReadableSpan, ...]) -> str:
    return " ".join(f"{s.name} {dict(s.attributes or {})}" for s in spans)


async def test_one_trace_from_the_http_edge_to_the_handoff_email(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    base = dev_env.client
    client = await Client.connect(
        base.service_client.config.target_host,
        namespace=base.namespace,
        data_converter=base.data_converter,
        interceptors=tracing_interceptors(provider),
    )
    lead = lead_id("traced")
    email = f"{lead}@corp.example"
    async with running_engine(client, standin, tmp_path, web=True, tracer_provider=provider) as e:
        key = create_key(make_engine(e.database_url), "ingest", "site")[1]
        async with httpx.AsyncClient(base_url=e.web_url or "", timeout=30) as http:
            profile = {"lead_id": lead, "email": email, "first_name": "Tracy"}
            answer = await http.post(
                "/api/leads", json=[profile], headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200, answer.text
            exporter.clear()  # the trace of one event from here on
            event = {"lead_id": lead, "type": "requested_call"}  # instantly sales-ready
            answer = await http.post(
                "/api/events", json=[event], headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200, answer.text
            await wait_until(
                lambda: any(
                    s.name == "RunActivity:send_email" for s in exporter.get_finished_spans()
                ),
                timeout=30,
                what="the handoff alert's email activity, traced",
            )
            dashboard = DashboardLinks(TEST_SECRET, e.web_url or "").url()
            assert (await http.get(dashboard)).status_code == 200
    provider.shutdown()

    spans = exporter.get_finished_spans()
    edge = next(s for s in spans if s.name == "POST /api/events")
    assert edge.attributes is not None and edge.attributes.get("http.route") == "/api/events"
    sent = next(s for s in spans if s.name == "SignalWithStartWorkflow:LeadWorkflow")
    assert sent.context.trace_id == edge.context.trace_id  # the request's own trace
    assert sent.parent is not None and sent.parent.span_id == edge.context.span_id
    # The lead's work is in the lead's trace (Temporal's interceptor): the event's handling
    # links back to the request's signal, and the handoff's activities follow it there.
    handled = next(s for s in spans if s.name == "HandleSignal:event")
    assert [link.context.span_id for link in handled.links] == [sent.context.span_id]
    lead_trace = handled.context.trace_id
    after = {
        s.name
        for s in spans
        if s.context.trace_id == lead_trace and (s.start_time or 0) >= (handled.start_time or 0)
    }
    assert {
        "StartActivity:assign_rep",
        "RunActivity:assign_rep",
        "StartActivity:send_email",
        "RunActivity:send_email",
    } <= after, sorted(after)
    # The dashboard's request is traced by its route; its signed token and the person's
    # address are in no span.
    assert any(s.name == "GET /dashboard/{token}" for s in spans)
    text = attributes_text(spans)
    assert dashboard.rsplit("/", 1)[-1] not in text
    assert email not in text
