"""``nurture serve``: the HTTP service on its own, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import structlog

from nurture.access.consent import ConsentConfigError, LinkSigner
from nurture.cli.output import connect_client, fail
from nurture.client.sales import LeadActionError
from nurture.config.config_loader import ConfigError, config_dir_from_env, templates_dir_from_env
from nurture.config.forms import FormsSource
from nurture.config.rules_source import RulesSource
from nurture.config.tracking_settings import load_tracking_settings
from nurture.runtime.tracing import tracer_provider_from_env, tracing_interceptors
from nurture.store.db import data_dir_from_env, database_url_from_env, keep_private, make_engine
from nurture.web.app import WebSettings, create_app, serving

log = structlog.get_logger(__name__)


async def serve_forever(host: str | None, port: int | None) -> int:
    keep_private(data_dir_from_env(), create=False)  # the database and secret: this user's only
    try:
        settings = WebSettings.from_env()
        settings.host = host or settings.host
        settings.port = port if port is not None else settings.port
        # Never a new secret here: links must verify with the secret the workers sign with.
        signer = LinkSigner.from_env(create=False, http_host=settings.host, http_port=settings.port)
        source = RulesSource(config_dir_from_env(), templates_dir_from_env())  # for ingest
        settings.tracking = load_tracking_settings(config_dir_from_env())
        forms = FormsSource(config_dir_from_env())
        tracer = tracer_provider_from_env("nurture-http")
        client = await connect_client(tracing_interceptors(tracer), patient=False)
        engine = make_engine(database_url_from_env())
        forms.record_status_in(engine)
        app = create_app(
            client,
            engine,
            signer,
            settings,
            lambda: source.current().scoring.known_event_types(),
            topics=lambda: source.current().cadences.topics(),
            forms=forms.current,
            rules=source.rule_set,
            tracer_provider=tracer,
            sales_ready=source.sales_ready,
        )
    except ConfigError as exc:
        return fail("; ".join(exc.problems), 2)
    except (ConsentConfigError, LeadActionError, ValueError) as exc:
        return fail(str(exc), 2)
    if settings.webhook_public_key is None:
        log.warning(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not set: SendGrid webhook posts will be refused"
        )
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
    finally:
        if tracer is not None:
            tracer.shutdown()  # the spans still batched are sent
    return 0
