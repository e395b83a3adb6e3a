"""The read model and the engine's bookkeeping, as SQLModel tables.

SQLite file by default (``NURTURE_DATABASE_URL`` overrides, e.g. a PostgreSQL URL). Every row is
written with a natural idempotency key, so an activity retried after a crash never double-counts.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, create_engine

from nurture.sqlite_writers import QueuedWriterConnection

DEFAULT_DATA_DIR = Path("data")


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxMessage(SQLModel, table=True):
    """One email we mean to send exactly once: ``pending`` until the provider accepted it
    (``sent``), or ``refused`` with the provider's reason."""

    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    category: str = Field(max_length=20)
    to_email: str = Field(max_length=320)
    subject: str = Field(max_length=998)
    status: str = Field(default="pending", max_length=10)
    provider_message_id: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class StageTransition(SQLModel, table=True):
    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    workflow_id: str = Field(max_length=220)
    at: datetime = Field(index=True)
    from_stage: str | None = Field(default=None, max_length=20)
    to_stage: str = Field(index=True, max_length=20)
    by: str = Field(max_length=100)
    reason: str
    score: int
    owner: str | None = Field(default=None, max_length=100)
    seconds_in_from_stage: float | None = None
    """How long the lead had been in ``from_stage``: time in stage, for the funnel report."""
    handoff: int | None = None
    """The handoff the lead was in when it moved (sales stages), else None."""


class RoundRobinTurn(SQLModel, table=True):
    """The next turn of each routing pool, shared by every lead and every worker."""

    pool: str = Field(primary_key=True, max_length=200)
    turns: int = 0


class RepAssignment(SQLModel, table=True):
    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    pool: str = Field(max_length=200)
    rep_id: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow)


class Suppression(SQLModel, table=True):
    """The global do-not-email list, consulted before every marketing send. An address lands
    here by unsubscribing (link or provider), bouncing hard, being dropped or reporting spam."""

    email: str = Field(primary_key=True, max_length=320)  # lower-cased
    reason: str = Field(max_length=40)
    source: str = Field(max_length=40)
    lead_id: str | None = Field(default=None, max_length=200)
    at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """Every SendGrid event received, once (by ``sg_event_id``); kept even when no lead
    matches, so nothing the provider tells us is dropped."""

    sg_event_id: str = Field(primary_key=True, max_length=100)
    event: str = Field(index=True, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    lead_id: str | None = Field(default=None, index=True, max_length=200)
    message_id: str | None = Field(default=None, max_length=200)
    status: str = Field(default="received", index=True, max_length=20)
    detail: str | None = None
    payload: str
    received_at: datetime = Field(default_factory=utcnow)


class WebhookPost(SQLModel, table=True):
    """Digests of signed webhook posts taken in: the same signed post seen twice is a replay."""

    post_digest: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(default_factory=utcnow, index=True)


class SalesTask(SQLModel, table=True):
    """A call, voicemail or direct-mail touch waiting in the inside-sales queue."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    channel: str = Field(max_length=20)
    cadence: str = Field(max_length=64)
    step: str = Field(max_length=64)
    title: str
    instructions: str = ""
    phone: str | None = Field(default=None, max_length=60)
    address: str | None = Field(default=None, max_length=500)
    status: str = Field(default="open", index=True, max_length=20)
    created_at: datetime = Field(default_factory=utcnow)
    due_at: datetime = Field(index=True)
    closed_at: datetime | None = None
    closed_by: str | None = Field(default=None, max_length=100)
    outcome: str | None = Field(default=None, max_length=40)
    note: str | None = None


class ApiKey(SQLModel, table=True):
    """An API key of the HTTP service. Only a hash of its secret is stored; the key itself is
    shown once, when it is created."""

    id: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    rep_id: str | None = Field(default=None, max_length=100)
    secret_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


def database_url_from_env(data_dir: Path | None = None) -> str:
    explicit = os.environ.get("NURTURE_DATABASE_URL")
    if explicit:
        return explicit
    directory = data_dir or Path(os.environ.get("NURTURE_DATA_DIR", DEFAULT_DATA_DIR))
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(directory / 'nurture.db').resolve()}"


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """``PRAGMA journal_mode=WAL`` (then the file's mode for every connection), tried again
    when another process is switching the same new file at that moment: SQLite answers
    "database is locked" at once there, without waiting out the busy timeout."""
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine on a database migrated to the current schema (``nurture.migrations``; a no-op
    when it already is); SQLite in WAL mode so workers and CLI share it, with one writer at a
    time per process (``nurture.sqlite_writers``)."""
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(
        url,
        connect_args=(
            {"check_same_thread": False, "timeout": 30, "factory": QueuedWriterConnection}
            if is_sqlite
            else {}
        ),
        pool_pre_ping=not is_sqlite,
    )
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    from nurture import read_model, rules_status  # noqa: F401  (their tables: the same schema)

    if migrate:
        from nurture.migrations import migrate as run_migrations

        run_migrations(engine)
    return engine
