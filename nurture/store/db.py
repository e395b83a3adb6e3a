"""The read model and the engine's bookkeeping, as SQLModel tables.

SQLite file by default (``NURTURE_DATABASE_URL`` overrides, e.g. a PostgreSQL URL). Every row is
written with a natural idempotency key, so an activity retried after a crash never double-counts.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, create_engine

from nurture.contract.ledger import LedgerStageMove
from nurture.store.clock import utcnow
from nurture.store.personal import PERSONAL
from nurture.store.sqlite_writers import QueuedWriterConnection

DEFAULT_DATA_DIR = Path("data")


class OutboxMessage(SQLModel, table=True):
    """One email we mean to send exactly once: ``pending`` until the provider accepted it
    (``sent``), or ``refused`` with the provider's reason. The subject and bodies are kept as
    rendered (with their signed links), so a person's export shows what they were sent."""

    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    category: str = Field(max_length=20)
    to_email: str = Field(max_length=320, sa_column_kwargs=PERSONAL)
    subject: str = Field(max_length=998, sa_column_kwargs=PERSONAL)
    text_body: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    html_body: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    status: str = Field(default="pending", max_length=10)
    provider_message_id: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class _StageTransitionKey(SQLModel):
    key: str = Field(primary_key=True, max_length=300)
    lead_id: str = Field(index=True, max_length=200)
    workflow_id: str = Field(max_length=220)


class StageTransition(LedgerStageMove, _StageTransitionKey, table=True):
    """One stage move of a lead (``nurture.contract.ledger.StageMove``): its columns are the
    move's fields after the row's key and whose lead it is. Only the column bounds and indexes
    of the move's fields are added here; their names and types are the move's."""

    at: datetime = Field(index=True)
    from_stage: str | None = Field(default=None, max_length=20)
    to_stage: str = Field(index=True, max_length=20)
    by: str = Field(max_length=100)
    reason: str = Field(sa_column_kwargs=PERSONAL)  # a rep's words on a reject
    owner: str | None = Field(default=None, max_length=100)


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
    here by unsubscribing (link or provider), bouncing hard, being dropped, reporting spam or
    being erased. Only the address's keyed digest is kept (``nurture.store.suppression``): the
    list answers whether an address is on it, and never which addresses are."""

    email_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=40)
    source: str = Field(max_length=40)
    lead_id: str | None = Field(default=None, max_length=200)
    at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """Every SendGrid event received, once (by ``sg_event_id``); kept even when no lead
    matches, so nothing the provider tells us is dropped."""

    sg_event_id: str = Field(primary_key=True, max_length=100)
    event: str = Field(index=True, max_length=40)
    email: str | None = Field(default=None, max_length=320, sa_column_kwargs=PERSONAL)
    lead_id: str | None = Field(default=None, index=True, max_length=200)
    message_id: str | None = Field(default=None, max_length=200)
    touch_key: str | None = Field(default=None, index=True, max_length=300)
    """the touch the event is about (its ``touch_id`` custom arg): engagement per step"""
    engagement: str | None = Field(default=None, max_length=20)
    """what the event counts as (``nurture.domain.engagement``), or None"""
    status: str = Field(default="received", index=True, max_length=20)
    detail: str | None = Field(default=None, sa_column_kwargs=PERSONAL)
    payload: str = Field(sa_column_kwargs=PERSONAL)
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
    title: str = Field(sa_column_kwargs=PERSONAL)  # rendered with the lead's name
    instructions: str = Field(default="", sa_column_kwargs=PERSONAL)
    phone: str | None = Field(default=None, max_length=60, sa_column_kwargs=PERSONAL)
    address: str | None = Field(default=None, max_length=500, sa_column_kwargs=PERSONAL)
    status: str = Field(default="open", index=True, max_length=20)
    created_at: datetime = Field(default_factory=utcnow)
    due_at: datetime = Field(index=True)
    closed_at: datetime | None = None
    closed_by: str | None = Field(default=None, max_length=100)
    outcome: str | None = Field(default=None, max_length=40)
    note: str | None = Field(default=None, sa_column_kwargs=PERSONAL)


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


def data_dir_from_env() -> Path:
    return Path(os.environ.get("NURTURE_DATA_DIR", DEFAULT_DATA_DIR))


def database_url_from_env(data_dir: Path | None = None) -> str:
    explicit = os.environ.get("NURTURE_DATABASE_URL")
    if explicit:
        return explicit
    directory = data_dir or data_dir_from_env()
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return f"sqlite:///{(directory / 'nurture.db').resolve()}"


# --- only the user running Nurture may read what it keeps -----------------------------------
# The data dir holds outbox rows (addresses, subjects), API key hashes, the link-signing
# secret and Temporal's histories: nothing another local account should read.

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
_GROUP_AND_OTHER = 0o077


def keep_private(data_dir: Path, *, create: bool = True) -> None:
    """Make this process and its children create files 0600 and directories 0700 (umask 077:
    SQLite's WAL/SHM files, the Temporal dev server's database, logs, the secret key), and
    make ``data_dir`` and what an earlier version left in it private (dir 0700, files without
    group/other bits). Entry points that create or serve the data call this first."""
    os.umask(PRIVATE_UMASK)
    if create:
        data_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if data_dir.is_dir():
        _restrict_tree(data_dir)


def _restrict_tree(top: Path) -> None:
    _restrict(top)
    for root, dirs, files in os.walk(top):  # symlinks are not followed nor changed
        for name in [*dirs, *files]:
            _restrict(Path(root) / name)


def _restrict(path: Path) -> None:
    """Take group and other permissions away from ``path`` (not through a symlink)."""
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not mode & _GROUP_AND_OTHER:
            return
        path.chmod(stat.S_IMODE(mode) & ~_GROUP_AND_OTHER)
    except FileNotFoundError:
        return  # e.g. a SQLite -shm file removed meanwhile
    except PermissionError as exc:  # another user's file: say so, do not fail the start
        structlog.get_logger(__name__).warning(
            "cannot make a data file private", path=str(path), problem=str(exc)
        )


def _restrict_sqlite_files(url: str) -> None:
    """The SQLite file and its WAL/SHM files private, whichever command created them (SQLite
    gives the WAL and SHM files the mode of the database file)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = Path(database + suffix)
        if candidate.exists():
            _restrict(candidate)


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
    """An engine on a database migrated to the current schema (``nurture.store.migrations``; a no-op
    when it already is); SQLite in WAL mode so workers and CLI share it, with one writer at a
    time per process (``nurture.store.sqlite_writers``)."""
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

    from nurture.store import (  # noqa: F401  (their tables: the same schema)
        data_keys,
        erasure_receipts,
        read_model,
        rules_status,
        salted,
        tracking,
    )

    if migrate:
        from nurture.store.migrations import migrate as run_migrations

        run_migrations(engine)
    if is_sqlite:
        _restrict_sqlite_files(url)
    return engine
