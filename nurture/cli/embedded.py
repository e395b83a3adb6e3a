"""``nurture up``: the embedded default in one command.

Starts the Temporal dev server (Web UI, SQLite file under the data dir so leads survive a
restart, lead search attributes registered), the SendGrid stand-in (unless a real key is set)
with its signed Event Webhook pointed at our HTTP service and its mailbox page, the HTTP
service (API, rep inbox, dashboard, webhooks, unsubscribe links, the tracker, and the demo
website ``/demo/`` with its site ``demo``) and a worker; Ctrl-C stops them all, worker first.
The data dir and everything in it are this user's only (0700/0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog
from sendgrid import SendGridAPIClient
from sqlalchemy.engine import Engine
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker

from nurture.access.codec_links import CodecLinks
from nurture.access.consent import LinkSigner
from nurture.client.retention import keep_retention_schedule
from nurture.client.temporal import (
    TemporalSettings,
    connect,
    installed_binary,
    search_attribute_flags,
)
from nurture.config.forms import FormsSource
from nurture.config.rules_source import RulesSource
from nurture.config.settings import MailerSettings, WorkerOptions
from nurture.config.tracking_settings import load_tracking_settings
from nurture.privacy.converter import encrypted_converter, key_store_from_env
from nurture.reports.worker_gauges import worker_gauges
from nurture.runtime.metrics import metrics_address_from_env, metrics_runtime
from nurture.runtime.tracing import tracer_provider_from_env, tracing_interceptors
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import database_url_from_env, keep_private, make_engine
from nurture.store.tracking import Site, ensure_site
from nurture.web.app import WebSettings, create_app, serving
from nurture.web.codec_api import ui_origins
from nurture.web.demo import DEMO_PREFIX

log = structlog.get_logger(__name__)


@dataclass
class EmbeddedOptions:
    data_dir: Path
    config_dir: Path
    templates_dir: Path
    port: int = 7233
    ui_port: int = 8233
    sendgrid_port: int = 3030
    http_port: int = 8080
    time_scale: float = 1.0
    headless: bool = False


class PortBusyError(RuntimeError):
    pass


def _check_free(port: int, what: str, flag: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortBusyError(
                f"port {port} ({what}) is already in use: is another 'nurture up' or Temporal "
                f"server running? Stop it, or choose another port with {flag}"
            ) from None


def start_dev_server(
    options: EmbeddedOptions, codec_endpoint: str | None = None
) -> subprocess.Popen[bytes]:
    """The dev server; its Web UI decodes payloads through ``codec_endpoint`` (our codec
    server), so an operator reads histories that are ciphertext to anyone else."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        installed_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(options.port),
        "--db-filename",
        str(options.data_dir / "temporal.db"),
        "--log-level",
        "error",
        *search_attribute_flags(),
    ]
    command += ["--headless"] if options.headless else ["--ui-port", str(options.ui_port)]
    if codec_endpoint and not options.headless:
        command += ["--ui-codec-endpoint", codec_endpoint]
    log_file = (options.data_dir / "temporal-server.log").open("ab")
    return subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )


async def wait_for_server(
    address: str,
    process: subprocess.Popen[bytes],
    data_converter: DataConverter | None = None,
    timeout: float = 60,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"the Temporal dev server exited with {process.returncode}; "
                "see temporal-server.log in the data dir"
            )
        try:
            client = await connect(
                TemporalSettings(address=address), data_converter, runtime, interceptors
            )
            # Connected is not ready: wait until the namespace answers.
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=client.namespace)
            )
            return client
        except (RuntimeError, RPCError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


STANDIN_TOKEN_FILE = "sendgrid-standin.token"
CODEC_ENDPOINT_VALID_FOR = timedelta(days=30)
"""How long the UI's codec endpoint works; ``nurture up`` makes a new one at every start."""


def new_standin_token(data_dir: Path) -> str:
    """A fresh token for the SendGrid stand-in's controls (signed test events, the mailbox),
    written to ``<data dir>/sendgrid-standin.token`` (0600) for demo scripts to read: without
    it, any local process could have the stand-in sign webhook events for the engine."""
    token = secrets.token_urlsafe(24)
    path = data_dir / STANDIN_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def point_standin_webhook(standin: SendGridStandIn, webhook_url: str) -> str:
    """Configure the stand-in's Event Webhook through SendGrid's own API, as one would in the
    SendGrid console, and return its verification key."""
    api = SendGridAPIClient(api_key=MailerSettings.standin(standin.url).api_key, host=standin.url)
    settings = api.client.user.webhooks.event.settings
    settings.patch(request_body={"enabled": True, "url": webhook_url})
    return str(json.loads(settings.signed.get().body)["public_key"])


DEMO_SITE_NAME = "demo"


def demo_site(database: Engine, http_port: int) -> Site:
    """The site of the demo website (``/demo/``): made on the first ``nurture up``, its
    origins following the HTTP port (both names a browser may use for this machine)."""
    origins = [f"http://127.0.0.1:{http_port}", f"http://localhost:{http_port}"]
    return ensure_site(database, DEMO_SITE_NAME, origins)


def _metrics_runtime(address: str | None) -> Runtime | None:
    """The runtime serving the in-process worker's metrics; none (said in the log and the
    banner) when switched off or the port is taken: a demo engine runs without them."""
    if address is None:
        return None
    try:
        return metrics_runtime(address)
    except ValueError as exc:
        log.warning("metrics not served", problem=str(exc))
        return None


WorkerBuilder = Callable[[Client, WorkerOptions, RulesSource], Worker]
"""``worker.build_worker``: handed in by the ``nurture`` command (``starter.py``), so that this
package never imports the workflows and activities it runs."""


async def run_embedded(
    options: EmbeddedOptions,
    on_ready: Callable[[dict[str, object]], None],
    build_worker: WorkerBuilder,
) -> None:
    """Run everything until SIGINT (Ctrl-C) or SIGTERM; ``on_ready(info)`` prints the banner.

    The handlers are installed here rather than relying on KeyboardInterrupt: a process started
    in the background by a shell inherits SIGINT as ignored, and service managers send SIGTERM.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # A broken config or template stops here, before any server is started.
    source = RulesSource(options.config_dir, options.templates_dir, options.time_scale)
    forms = FormsSource(options.config_dir)
    keep_private(options.data_dir)  # before the dev server, the database or the secret exist
    _check_free(options.port, "Temporal gRPC", "--port")
    if not options.headless:
        _check_free(options.ui_port, "Temporal Web UI", "--ui-port")
    _check_free(options.http_port, "HTTP service", "--http-port")
    real_key = bool(os.environ.get("SENDGRID_API_KEY"))
    if not real_key:
        _check_free(options.sendgrid_port, "SendGrid stand-in", "--sendgrid-port")
    http_url = f"http://127.0.0.1:{options.http_port}"
    signer = LinkSigner.from_env(
        options.data_dir, http_host="127.0.0.1", http_port=options.http_port
    )
    web_settings = WebSettings.from_env()
    web_settings.tracking = load_tracking_settings(options.config_dir)  # IP databases too
    address = f"127.0.0.1:{options.port}"
    web_settings.codec_origins = ui_origins(options.ui_port)
    codec_endpoint = CodecLinks(signer.secret, http_url).endpoint(CODEC_ENDPOINT_VALID_FOR)
    converter = encrypted_converter(key_store_from_env(data_dir=options.data_dir))
    metrics = metrics_address_from_env()
    runtime = _metrics_runtime(metrics)
    tracer = tracer_provider_from_env("nurture")
    server = start_dev_server(options, codec_endpoint)
    standin: SendGridStandIn | None = None
    try:
        client = await wait_for_server(
            address, server, converter, runtime=runtime, interceptors=tracing_interceptors(tracer)
        )
        if real_key:
            mailer = MailerSettings.from_env()
        else:
            standin = SendGridStandIn(
                port=options.sendgrid_port, control_token=new_standin_token(options.data_dir)
            ).start()
            mailer = MailerSettings.standin(standin.url)
            web_settings.webhook_public_key = point_standin_webhook(
                standin, f"{http_url}/webhooks/sendgrid"
            )
        worker_options = WorkerOptions(
            config_dir=options.config_dir,
            templates_dir=options.templates_dir,
            database_url=database_url_from_env(options.data_dir),
            mailer=mailer,
            signer=signer,
            time_scale=options.time_scale,
        )
        worker = build_worker(client, worker_options, source)
        await keep_retention_schedule(client, source.current().engine)
        web_engine = make_engine(worker_options.database_url)
        forms.record_status_in(web_engine)
        web_settings.demo_site_key = demo_site(web_engine, options.http_port).site_key
        app = create_app(
            client,
            web_engine,
            signer,
            web_settings,
            lambda: source.current().scoring.known_event_types(),
            topics=lambda: source.current().cadences.topics(),
            forms=forms.current,
            rules=source.rule_set,
            tracer_provider=tracer,
            sales_ready=source.sales_ready,
        )
        meter = runtime.metric_meter if runtime is not None else None
        async with (
            worker,
            worker_gauges(meter, worker_options.database_url, source),
            serving(app, "127.0.0.1", options.http_port),
        ):
            on_ready(
                {
                    "temporal": address,
                    "ui": None if options.headless else f"http://127.0.0.1:{options.ui_port}",
                    "sendgrid": mailer.base_url,
                    "mailbox": standin.mailbox_url if standin is not None else None,
                    "http": http_url,
                    "demo": f"{http_url}{DEMO_PREFIX}/",
                    "data_dir": str(options.data_dir),
                    "database": worker_options.database_url,
                    "time_scale": options.time_scale,
                    "metrics": f"http://{metrics}/metrics" if runtime is not None else None,
                }
            )
            await stop.wait()
            log.info("stopping: worker and HTTP service, then the SendGrid stand-in and Temporal")
    finally:
        if standin is not None:
            standin.stop()
        if tracer is not None:
            tracer.shutdown()  # the spans still batched are sent
        stop_process(server)
        log.info("stopped: worker, HTTP service, SendGrid stand-in and Temporal dev server")
