"""The FastAPI application and how it is served (alone, or inside ``nurture up``)."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.engine import Engine
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from nurture.access.auth import MARKETING, SEND_LEADS
from nurture.access.codec_links import CodecLinks
from nurture.access.consent import LinkSigner
from nurture.access.dashboard_links import DashboardLinks
from nurture.access.rep_links import RepLinks
from nurture.access.visitor_links import IdentifyLinks
from nurture.client.ingest import SalesReady, never_sales_ready
from nurture.client.visits import Visits
from nurture.config.config_loader import RuleSet
from nurture.config.forms import FormBook
from nurture.config.tracking_settings import TrackingSettings
from nurture.contract.messages import TASK_QUEUE
from nurture.privacy.codec import EnvelopeCodec
from nurture.store.ip_places import MaxMindPlaces, PlaceFinder, from_settings
from nurture.store.suppression import why_suppressed
from nurture.web.cadence_preview import CadencePreviewPages
from nurture.web.campaigns_api import CampaignsApi
from nurture.web.codec_api import CodecServer, ui_origins
from nurture.web.crm_webhook import CrmWebhook
from nurture.web.dashboard import DashboardPages
from nurture.web.demo import DemoSite
from nurture.web.erasure_api import ErasureApi
from nurture.web.event_store import EventStore
from nurture.web.export_api import ExportApi
from nurture.web.forms_api import FormsApi
from nurture.web.inbox import RepInbox
from nurture.web.ingest_api import IngestApi
from nurture.web.leads_api import LeadsApi
from nurture.web.preferences import PreferencePages
from nurture.web.reports_api import ReportsApi
from nurture.web.responses import install_api_contract
from nurture.web.rules_page import RulesHistoryPage
from nurture.web.security import PageSecurityHeaders, requires
from nurture.web.sendgrid_webhook import MAX_BODY_BYTES as SENDGRID_BODY_MAX
from nurture.web.sendgrid_webhook import SendGridWebhook
from nurture.web.service_metrics import serve_metrics
from nurture.web.service_tracing import trace_requests
from nurture.web.site_gate import SiteGate
from nurture.web.tracking_api import TRACKING_BODY_MAX, TrackingApi
from nurture.web.unsubscribe import UnsubscribePages
from nurture.web.webhook_verify import PUBLIC_KEY_ENV, WebhookVerifier

PAGES_DIR = Path(__file__).parent / "pages"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

MiB = 1024 * 1024
BULK_PATHS = frozenset({"/api/events", "/api/leads", "/api/leads/import"})
BULK_BODY_MAX = 16 * MiB  # a batch of 10,000 typical items, or a CSV of as many rows
WEBHOOK_BODY_MAX = SENDGRID_BODY_MAX  # SendGrid posts events in batches (its route's limit)
CODEC_BODY_MAX = 16 * MiB  # the payloads of a page of history
BODY_MAX = 1 * MiB  # everything else: an action, a form, a CRM notification
JSON_API_PREFIX = "/api/"
NOT_JSON_PATHS = frozenset({"/api/leads/import"})  # CSV
# What `curl -d` and hand-written clients send with a JSON body: read it as JSON all the same.
JSON_LOOKALIKES = frozenset({"", "text/plain", "application/x-www-form-urlencoded"})


@dataclass
class WebSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    webhook_public_key: str | None = None
    webhook_max_age_seconds: int = 300
    rep_link_max_age: timedelta = timedelta(days=7)
    crm_webhook_secret: str | None = field(default=None, repr=False)
    codec_origins: list[str] = field(default_factory=ui_origins)
    """The Temporal Web UI origins the codec server answers (``NURTURE_CODEC_ORIGINS``)."""
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    """``config/tracking.yaml``: the website tracker's retention, limits and IP database."""
    places: PlaceFinder | None = None
    """Where visits come from (None: from ``tracking``'s IP database, if it names one)."""
    demo_site_key: str | None = None
    """The demo site's key: with one, ``/demo/`` serves the demo website (``nurture up``)."""

    @classmethod
    def from_env(cls) -> WebSettings:
        """``NURTURE_HTTP_HOST``/``NURTURE_HTTP_PORT`` and ``SENDGRID_WEBHOOK_PUBLIC_KEY``."""
        port = os.environ.get("NURTURE_HTTP_PORT", str(DEFAULT_PORT))
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"NURTURE_HTTP_PORT must be a port number, not {port!r}")
        return cls(
            host=os.environ.get("NURTURE_HTTP_HOST", DEFAULT_HOST),
            port=int(port),
            webhook_public_key=os.environ.get(PUBLIC_KEY_ENV) or None,
            crm_webhook_secret=os.environ.get("NURTURE_CRM_WEBHOOK_SECRET") or None,
        )


def create_app(
    client: Client,
    engine: Engine,
    signer: LinkSigner,
    settings: WebSettings,
    known_event_types: Callable[[], set[str] | None] = lambda: None,
    task_queue: str = TASK_QUEUE,
    topics: Callable[[], list[str]] = list,
    forms: Callable[[], FormBook] = FormBook,
    rules: Callable[[], RuleSet] | None = None,
    tracer_provider: TracerProvider | None = None,
    sales_ready: SalesReady = never_sales_ready,
) -> FastAPI:
    """The service. ``known_event_types`` (from the current rules) lets ingest refuse event
    types scoring.yaml does not know, as the CLI does; ``topics`` (the cadences' topics in
    force) are what the preferences page offers; ``forms`` (``config/forms.yaml`` in force,
    see :class:`~nurture.config.forms.FormsSource`) are the website's forms; ``rules`` (the
    rules and templates in force) are what the cadence preview shows; with a
    ``tracer_provider`` each request is traced (``nurture.runtime.tracing``); ``sales_ready``
    says which events (posted, tracked or from a form) put their lead ahead of nurture work."""
    store = EventStore(engine)
    verifier = (
        WebhookVerifier(settings.webhook_public_key, settings.webhook_max_age_seconds)
        if settings.webhook_public_key
        else None
    )
    pages = Environment(
        loader=FileSystemLoader(str(PAGES_DIR)), autoescape=select_autoescape(["html"])
    )
    app = FastAPI(
        title="Nurture",
        summary="Lead-nurture engine: ingest, leads and rep actions, SendGrid events, consent",
        version="0.1.0",
    )
    install_api_contract(app)
    app.add_middleware(PageSecurityHeaders)  # one set of headers on every HTML page
    webhook = SendGridWebhook(client, store, verifier, signer.is_unsubscribe_link)
    app.add_middleware(RequestBodyLimits)
    serve_metrics(app, engine)
    if tracer_provider is not None:
        trace_requests(app, tracer_provider)
    app.include_router(webhook.router())
    ingest = IngestApi(
        client,
        known_event_types,
        may_ingest=requires(engine, *SEND_LEADS),
        may_import=requires(engine, *MARKETING),
        task_queue=task_queue,
        suppression=functools.partial(why_suppressed, engine),
        sales_ready=sales_ready,
    )
    app.include_router(ingest.router())
    app.include_router(LeadsApi(client, engine).router())
    app.include_router(ErasureApi(client, engine, task_queue).router())
    app.include_router(ExportApi(client, engine).router())
    app.include_router(ReportsApi(engine).router())
    app.include_router(CampaignsApi(engine).router())
    dashboard_links = DashboardLinks(signer.secret, signer.public_url)
    app.include_router(DashboardPages(engine, dashboard_links, pages).router())
    app.include_router(RulesHistoryPage(engine, dashboard_links, pages).router())
    if rules is not None:
        previews = CadencePreviewPages(client, engine, dashboard_links, pages, rules)
        app.include_router(previews.router())
    links = RepLinks(signer.secret, signer.public_url, settings.rep_link_max_age)
    app.include_router(RepInbox(client, links, pages, task_queue).router())
    app.include_router(CrmWebhook(client, settings.crm_webhook_secret, store).router())
    app.include_router(UnsubscribePages(client, store, signer, pages).router())
    app.include_router(PreferencePages(client, store, signer, pages, topics).router())
    suppressed = functools.partial(why_suppressed, engine)
    visits = Visits(
        client,
        engine,
        IdentifyLinks(signer.secret, signer.public_url),
        settings.tracking,
        task_queue,
        suppression=suppressed,
        sales_ready=sales_ready,
    )
    places = settings.places or from_settings(settings.tracking)
    if isinstance(places, MaxMindPlaces):  # memory-mapped: unmapped when the app is let go
        weakref.finalize(app, places.close)
    gate = SiteGate(engine, settings.tracking, places)
    app.include_router(TrackingApi(gate, visits, known_event_types).router())
    app.include_router(FormsApi(gate, visits, forms, pages).router())
    if settings.demo_site_key:
        app.include_router(DemoSite(settings.demo_site_key, pages).router())
    codec = client.data_converter.payload_codec if isinstance(client, Client) else None
    if isinstance(codec, EnvelopeCodec):  # the service's own: it decodes what it encodes
        endpoints = CodecLinks(signer.secret, signer.public_url)
        app.mount("/codec", CodecServer(codec, endpoints, engine, settings.codec_origins).app())

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def body_limit_for(path: str) -> int:
    """The largest request body ``path`` takes, in bytes."""
    if path in BULK_PATHS:
        return BULK_BODY_MAX
    if path.startswith("/codec/"):
        return CODEC_BODY_MAX
    if path == "/webhooks/sendgrid":
        return WEBHOOK_BODY_MAX
    if path.startswith(("/t/", "/f/")):
        return TRACKING_BODY_MAX
    return BODY_MAX


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is over this endpoint's limit of {_size(limit)}: "
            "split it into smaller requests",
            # The rest of the body is never read: the connection cannot carry another request.
            headers={"Connection": "close"},
        )


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit // 1024} KiB"


class RequestBodyLimits:
    """Two things every request body goes through before anything parses it.

    Size: a body over its route's limit is refused with 413, by ``Content-Length`` before a
    byte is read, and while it streams when it has none (chunked), so a huge upload never
    sits in memory. Content type: the JSON API reads a body sent as ``text/plain``,
    ``application/x-www-form-urlencoded`` (what ``curl -d`` sends) or without a type as
    JSON, as the README's curl examples expect; the OpenAPI spec declares JSON, which stays
    true.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"])
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(BodyTooLargeError(limit), scope, receive, send)
            return
        if _reads_json(scope) and _media_type(headers) in JSON_LOOKALIKES:
            scope = _with_json_content_type(scope)
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, noting_send)
        except BodyTooLargeError as exc:  # raised where no handler turned it into an answer
            if started:
                raise
            await _refuse(exc, scope, receive, send)


async def _refuse(exc: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    answer = JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
    await answer(scope, receive, send)


def _reads_json(scope: Scope) -> bool:
    path: str = scope["path"]
    return (
        scope["method"] in ("POST", "PUT", "PATCH")
        and path.startswith(JSON_API_PREFIX)
        and path not in NOT_JSON_PATHS
    )


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _with_json_content_type(scope: Scope) -> Scope:
    raw = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
    return {**scope, "headers": [*raw, (b"content-type", b"application/json")]}


class _EmbeddedServer(uvicorn.Server):
    """The owner of the event loop handles signals; uvicorn must not take them over."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(app: FastAPI, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on this event loop until the block exits; yields the base URL
    (``port`` 0 picks a free port)."""
    # No access log: unsubscribe URLs carry tokens, and our own handlers log what matters.
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan="off", access_log=False
    )
    server = _EmbeddedServer(config)
    # Bound here so a busy port is a plain OSError to the caller (uvicorn would sys.exit).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from exc
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            raise RuntimeError(f"the HTTP server could not start on {host}:{port}")
        await asyncio.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
