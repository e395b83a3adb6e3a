"""``nurture serve``: the HTTP service on its own, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import structlog

from nurture.cli.output import connect_client, fail
from nurture.consent import LinkSigner
from nurture.db import database_url_from_env, make_engine
from nurture.sales import LeadActionError
from nurture.web.app import WebSettings, create_app, serving

log = structlog.get_logger(__name__)


async def serve_forever(host: str | None, port: int | None) -> int:
    settings = WebSettings.from_env()
    settings.host = host or settings.host
    settings.port = port if port is not None else settings.port
    if settings.webhook_public_key is None:
        log.warning(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not set: SendGrid webhook posts will be refused"
        )
    try:
        client = await connect_client()
    except LeadActionError as exc:
        return fail(str(exc), 2)
    app = create_app(client, make_engine(database_url_from_env()), LinkSigner.from_env(), settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serving(app, settings.host, settings.port) as url:
            log.info("http service ready", url=url)
            await stop.wait()
    except OSError as exc:
        return fail(str(exc), 2)
    return 0
