"""Schema migrations (Alembic), run by :func:`nurture.store.db.make_engine` every time a process
builds an engine: worker, HTTP service and CLI commands may all do it at the same moment.

Revisions live in ``versions/`` and are written by hand (no autogenerate at run time): a new one
is ``versions/NNNN_what.py`` with ``revision = "NNNN"`` and ``down_revision`` the previous head,
and :data:`HEAD` moves to it (a test checks that :data:`HEAD` is Alembic's head and that the
migrated schema matches the SQLModel tables). Alembic is configured here, in code: no
``alembic.ini``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).parent
BASELINE = "0001"
"""The schema of the last release without migrations (its tables, no ``alembic_version``)."""
HEAD = "0012"
"""The newest revision: a database at it needs nothing, and is recognised without loading
Alembic (one cheap query)."""

KNOWN_REVISIONS = frozenset(
    path.name.split("_", 1)[0] for path in (SCRIPT_LOCATION / "versions").glob("[0-9]*_*.py")
)
_VERSION_TABLE = "alembic_version"
_BASELINE_TABLES = frozenset(
    {
        "outboxmessage",
        "stagetransition",
        "roundrobinturn",
        "repassignment",
        "suppression",
        "webhookevent",
        "webhookpost",
        "salestask",
        "apikey",
    }
)
_PG_LOCK_KEY = 0x6E75727475726531  # "nurture1": pg_advisory_xact_lock's key for migrations

log = logging.getLogger(__name__)  # standard library: silent in CLI commands printing JSON


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer release than this one: running on it could
    corrupt data, so nothing starts until this release is upgraded too."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"the database schema is at revision {revision}, newer than this release knows "
            f"(its newest is {HEAD}): a newer Nurture migrated it. Upgrade this installation "
            "to that release (or point NURTURE_DATABASE_URL at another database)"
        )
        self.revision = revision


def refuse_unknown(revision: str | None) -> None:
    """Raise :class:`SchemaTooNewError` for a revision this release has no migration for."""
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise SchemaTooNewError(revision)


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None (empty, or made before migrations existed)."""
    with engine.connect() as conn:
        return _read_revision(conn)


def migrate(engine: Engine) -> None:
    """Bring the database to :data:`HEAD`; safe to call from several processes at once.

    An empty database is upgraded from nothing; one made by the release before migrations (our
    tables, no ``alembic_version``) is stamped :data:`BASELINE` first, its rows kept. At head,
    this is one look at the version table (two cheap queries) and does not load Alembic.
    """
    revision = current_revision(engine)
    if revision == HEAD:
        return
    refuse_unknown(revision)
    with _exclusive(engine) as conn:
        before = _read_revision(conn)  # again: another process may have migrated meanwhile
        if before == HEAD:
            return
        refuse_unknown(before)
        from alembic import command

        config = alembic_config(conn)
        if before is None and (found := _pre_alembic_revision(conn)):
            command.stamp(config, found)
        command.upgrade(config, "head")
        log.info("database migrated from %s to %s", before or "nothing", _read_revision(conn))


def _read_revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table(_VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()


def _pre_alembic_revision(conn: Connection) -> str | None:
    """The revision whose schema a database without ``alembic_version`` already has: None when
    it has none of our tables, else the baseline (or head, for the development builds that
    created the read model with ``create_all`` before migrations existed)."""
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    if not tables & _BASELINE_TABLES:
        return None
    columns = {c["name"] for c in inspector.get_columns("stagetransition")}
    if "lead" in tables and {"seconds_in_from_stage", "handoff"} <= columns:
        return "0003" if "rulesstatus" in tables else "0002"
    return BASELINE


def alembic_config(conn: Connection) -> Config:
    """Alembic's configuration for running its commands on ``conn`` (e.g.
    ``command.downgrade(alembic_config(conn), "0001")`` inside ``engine.begin()``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    return config


@contextlib.contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """One transaction that no other process migrating the same database runs beside:
    PostgreSQL's transaction-scoped advisory lock (released at commit or rollback), SQLite's
    lock file next to the database file (never the database file itself: closing any handle
    on it would drop SQLite's own POSIX locks)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            yield conn
        return
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _file_lock(_sqlite_lock_path(engine)), engine.begin() as conn:
        # One SQLite transaction for the whole migration (pysqlite would otherwise commit each
        # DDL statement on its own): atomic, one sync to disk instead of one per table, and the
        # write lock at once, so readers never see half a schema.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def _sqlite_lock_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        return None  # private to its connection: nobody to race with
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    path = Path(database)
    return path.with_name(path.name + ".migrate.lock")


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes, even on a crash
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
