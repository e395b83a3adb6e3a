"""The FastAPI application and how it is served (alone, or inside ``nurture up``)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Engine
from temporalio.client import Client

from nurture.consent import LinkSigner
from nurture.messages import TASK_QUEUE
from nurture.rep_links import RepLinks
from nurture.web.campaigns_api import campaigns_router
from nurture.web.crm_webhook import CrmWebhook
from nurture.web.dashboard import DashboardLinks, DashboardPages
from nurture.web.event_store import EventStore
from nurture.web.inbox import RepInbox
from nurture.web.ingest_api import IngestApi
from nurture.web.leads_api import leads_router
from nurture.web.reports_api import reports_router
from nurture.web.security import PageSecurityHeaders, requires
from nurture.web.sendgrid_webhook import SendGridWebhook
from nurture.web.unsubscribe import UnsubscribePages
from nurture.web.webhook_verify import PUBLIC_KEY_ENV, WebhookVerifier

PAGES_DIR = Path(__file__).parent / "pages"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass
class WebSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    webhook_public_key: str | None = None
    webhook_max_age_seconds: int = 300
    rep_link_max_age: timedelta = timedelta(days=7)
    crm_webhook_secret: str | None = field(default=None, repr=False)

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
) -> FastAPI:
    """The service. ``known_event_types`` (from the current rules) lets ingest refuse event
    types scoring.yaml does not know, as the CLI does."""
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
    app.add_middleware(PageSecurityHeaders)  # one set of headers on every HTML page
    webhook = SendGridWebhook(client, store, verifier, signer.is_unsubscribe_link)
    app.include_router(webhook.router())
    ingest = IngestApi(
        client,
        known_event_types,
        may_ingest=requires(engine, "ingest", "marketer", "operator"),
        may_import=requires(engine, "marketer", "operator"),
        task_queue=task_queue,
    )
    app.include_router(ingest.router())
    app.include_router(leads_router(client, engine))
    app.include_router(reports_router(engine))
    app.include_router(campaigns_router(engine))
    app.include_router(
        DashboardPages(engine, DashboardLinks(signer.secret, signer.public_url), pages).router()
    )
    links = RepLinks(signer.secret, signer.public_url, settings.rep_link_max_age)
    app.include_router(RepInbox(client, links, pages, task_queue).router())
    app.include_router(CrmWebhook(client, settings.crm_webhook_secret).router())
    app.include_router(UnsubscribePages(client, store, signer, pages).router())

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


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
