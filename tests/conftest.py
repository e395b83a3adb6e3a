"""Real parts for every test: a Temporal server (time-skipping or dev), the SendGrid stand-in
on loopback driven by the real client, and a real SQLite database file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from temporalio.api.enums.v1 import IndexedValueType, PendingWorkflowTaskState
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from nurture.access.consent import LinkSigner
from nurture.cli.embedded import point_standin_webhook
from nurture.client.sales import query_state
from nurture.client.starting import send_event, send_profile
from nurture.client.temporal import installed_binary
from nurture.config.forms import FormsSource
from nurture.config.rules_source import RulesSource
from nurture.config.settings import CrmSettings, MailerSettings, WorkerOptions
from nurture.config.tracking_settings import TrackingSettings
from nurture.contract.messages import LeadState
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.privacy.converter import KEYS_DATABASE_ENV, encrypted_converter
from nurture.privacy.key_store import KeyStore
from nurture.privacy.master_keys import MASTER_KEY_ENV, MasterKeys, parse
from nurture.privacy.master_keys import generate as generate_master_key
from nurture.standins.crm_standin import SalesforceStandIn
from nurture.standins.sendgrid_standin import RecordedMessage, SendGridStandIn
from nurture.store.db import make_engine
from nurture.web.app import WebSettings, create_app, serving
from worker import build_worker

if TYPE_CHECKING:
    from playwright.async_api import Browser

FIXTURES = Path(__file__).parent / "fixtures"
TEST_RULES = FIXTURES / "rules"
TEST_TEMPLATES = FIXTURES / "templates"
TEST_SECRET = "test-secret-0123456789abcdef"


@pytest.fixture(scope="session", autouse=True)
def key_store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """The data keys of every lead the tests' Temporal servers see, as in production: in a
    database of ours, wrapped by a master key. Every process a test starts (CLI commands,
    workers in subprocesses) is given the same, through the environment."""
    url = f"sqlite:///{tmp_path_factory.mktemp('keys') / 'keys.db'}"
    master_key = generate_master_key()
    os.environ[KEYS_DATABASE_ENV], os.environ[MASTER_KEY_ENV] = url, master_key
    return KeyStore(make_engine(url), MasterKeys(current=parse(master_key, MASTER_KEY_ENV)))


@pytest.fixture(scope="session")
def data_converter(key_store: KeyStore) -> DataConverter:
    """Encrypting, as every client and worker of the engine: tests see what operators see."""
    return encrypted_converter(key_store)


@pytest.fixture
async def time_skipping_env(data_converter: DataConverter) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"),
        data_converter=data_converter,
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type)
                for key in SEARCH_ATTRIBUTES
            },
        )
    )
    # One server per test: workflows left sleeping by an earlier test (their worker gone)
    # would hold pending tasks that stop the server from skipping time.
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env(data_converter: DataConverter) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For tests that configure logging: put the process's logging back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.fixture
def salesforce() -> Iterator[SalesforceStandIn]:
    """A local Salesforce stand-in (OAuth client credentials ``nurture`` / ``s3cret``)."""
    with SalesforceStandIn(client_id="nurture", client_secret="s3cret") as server:
        yield server


@pytest.fixture
def standin() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as server:
        yield server


@dataclass
class Engine:
    """A running worker on its own task queue, with the stand-in and database it uses."""

    client: Client
    task_queue: str
    standin: SendGridStandIn
    database_url: str
    worker: Worker
    web_url: str | None = None

    async def profile(self, **fields: object) -> WorkflowHandle:
        return await send_profile(
            self.client, LeadProfile.model_validate(fields), task_queue=self.task_queue
        )

    async def request_call(self, lead_id: str) -> LeadState:
        """The lead asks for a call (instant qualify); return its state once assigned."""
        handle = await self.event(lead_id, "requested_call")
        return await wait_for_state(handle, lambda s: s.stage == "assigned")

    async def event(self, lead_id: str, type: str, **fields: object) -> WorkflowHandle:
        return await send_event(
            self.client,
            LeadEvent.model_validate({"lead_id": lead_id, "type": type, **fields}),
            task_queue=self.task_queue,
        )


@asynccontextmanager
async def running_engine(
    client: Client,
    standin: SendGridStandIn,
    tmp_path: Path,
    config_dir: Path = TEST_RULES,
    templates_dir: Path = TEST_TEMPLATES,
    time_scale: float = 1.0,
    web: bool = False,
    crm: CrmSettings | None = None,
    crm_webhook_secret: str | None = None,
    database_url: str | None = None,
    web_port: int = 0,
    demo_site_key: str | None = None,
    tracking: TrackingSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    task_queue: str | None = None,
) -> AsyncIterator[Engine]:
    """A worker (and with ``web``, the HTTP service with the stand-in's signed Event Webhook
    pointed at it, as ``nurture up`` wires them; on ``web_port``, any free one when 0; with
    the demo website when given its site's key; with ``tracking``, config/tracking.yaml's
    settings), on a SQLite file unless ``database_url``; on a task queue of its own unless
    ``task_queue`` (a worker taking over an earlier one's leads)."""
    task_queue = task_queue or f"test-{uuid.uuid4().hex[:8]}"
    database_url = database_url or f"sqlite:///{tmp_path / 'nurture.db'}"
    rules = RulesSource(config_dir, templates_dir, time_scale)  # one load for worker and web
    async with contextlib.AsyncExitStack() as stack:
        web_url = None
        signer = LinkSigner(secret=TEST_SECRET)
        if web:
            settings = WebSettings(
                webhook_public_key=standin.webhook_public_key,
                crm_webhook_secret=crm_webhook_secret,
                demo_site_key=demo_site_key,
                tracking=tracking or TrackingSettings(),
            )
            app = create_app(
                client,
                make_engine(database_url),
                signer,
                settings,
                lambda: rules.current().scoring.known_event_types(),
                task_queue,
                topics=lambda: rules.current().cadences.topics(),
                forms=FormsSource(config_dir).current,
                rules=rules.rule_set,
                tracer_provider=tracer_provider,
                sales_ready=rules.sales_ready,
            )
            web_url = await stack.enter_async_context(serving(app, "127.0.0.1", web_port))
            point_standin_webhook(standin, f"{web_url}/webhooks/sendgrid")
            signer = LinkSigner(secret=TEST_SECRET, public_url=web_url)
        options = WorkerOptions(
            config_dir=config_dir,
            templates_dir=templates_dir,
            database_url=database_url,
            mailer=MailerSettings(api_key="SG.test-key", base_url=standin.url),
            signer=signer,
            crm=crm,
            time_scale=time_scale,
            task_queue=task_queue,
        )
        worker = build_worker(client, options, rules)
        await stack.enter_async_context(worker)
        yield Engine(client, task_queue, standin, database_url, worker, web_url)


def lead_id(prefix: str = "lead") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


QUERY_WAIT = timedelta(seconds=35)
"""The longest a test waits for one answer to the lead's query (past the server's own 30 s): a
lead whose workflow tasks never complete must fail its test with what Temporal says of it,
not hang it."""
UNANSWERED = {RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED}
"""The client's own timeout (the core reports "Timeout expired" as cancelled) or the server's."""


async def lead_state(handle: WorkflowHandle) -> LeadState:
    try:
        return await query_state(handle, QUERY_WAIT)
    except RPCError as err:
        if err.status not in UNANSWERED:
            raise
        raise AssertionError(
            f"{handle.id} did not answer its query within {QUERY_WAIT.seconds} s; "
            f"{await _workflow_task_said(handle)}"
        ) from err


async def _workflow_task_said(handle: WorkflowHandle) -> str:
    """What Temporal says of the lead's workflow: its history length and pending workflow
    task (a task failing or timing out on every attempt shows as a high attempt)."""
    raw = (await handle.describe(rpc_timeout=QUERY_WAIT)).raw_description
    pending = raw.pending_workflow_task
    task = (
        f"pending workflow task: attempt {pending.attempt}, "
        f"{PendingWorkflowTaskState.Name(pending.state)}"
        if raw.HasField("pending_workflow_task")
        else "no pending workflow task"
    )
    return f"history length {raw.workflow_execution_info.history_length}, {task}"


async def wait_until(
    predicate: Callable[[], object], timeout: float = 15.0, what: str = "the condition"
) -> None:
    """Poll ``predicate`` until it holds (work done by workers and servers is async)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} never held within {timeout:g} s")
        await asyncio.sleep(0.05)


async def wait_until_async(
    predicate: Callable[[], Awaitable[object]], timeout: float = 15.0, what: str = "the condition"
) -> None:
    """Poll ``predicate`` until it holds, for a condition read over the network (a history,
    a query): the next read starts only after the last one answered."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} never held within {timeout:g} s")
        await asyncio.sleep(0.1)


async def wait_for_email(
    standin: SendGridStandIn, lead: str, category: str, count: int = 1
) -> list[RecordedMessage]:
    """The lead's emails of ``category`` once at least ``count`` reached the stand-in."""
    await wait_until(
        lambda: len(standin.messages_with(lead_id=lead, category=category)) >= count,
        timeout=10,
        what=f"{count} {category} email(s) for {lead}",
    )
    return standin.messages_with(lead_id=lead, category=category)


async def wait_for_state(
    handle: WorkflowHandle, predicate: Callable[[LeadState], bool], timeout: float = 10.0
) -> LeadState:
    """Poll the lead's state query until ``predicate`` holds (signals are applied async)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await lead_state(handle)
        if predicate(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"lead never reached the expected state; last: {state.stage}, "
                f"owner={state.owner}, timeline={state.timeline[-5:]}; "
                f"{await _workflow_task_said(handle)}"
            )
        await asyncio.sleep(0.05)


POSTGRES_ADMIN_URL = os.environ.get(
    "NURTURE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests on a SQLite file and on the local PostgreSQL server (own database,
    dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nurture.db'}"
        return
    with postgres_database("nurture_test") as url:
        yield url


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A database of its own on the local PostgreSQL server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own status once everything is reported: the Temporal SDK's native
    threads can abort interpreter teardown (sdk-python issue 300), which must not turn a green
    run red. See nurture/runtime/process.py."""
    if _exit_status:
        from nurture.runtime.process import exit_now

        exit_now(_exit_status[-1])


# --- a real browser for the web pages -----------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"  # screenshots, kept by CI


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium driven by Playwright (no browser download: the system's binary)."""
    from playwright.async_api import async_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        await chromium.close()
