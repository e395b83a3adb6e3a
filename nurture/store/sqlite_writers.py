"""One writer at a time per SQLite file inside a process, queued instead of polling.

SQLite lets one connection write at a time. When several threads of a worker write at once
(every lead's read-model batch is a local activity on the activity thread pool), the losers
wait in SQLite's busy handler, which *sleeps* 1, 2, 5 … up to 100 ms between looks at the
lock, however soon it is free (with 50 leads at once a write of a few rows, 0.7 ms alone, took
27 ms at the median and 450 ms at p99; most of that turned out to be waiting for the GIL, which
this does not change). Here a thread takes the file's process-wide lock at
its transaction's first write and gives it back when the transaction ends, so the next writer
starts the moment the last one commits. Writers in other processes (the CLI, ``serve``) still
meet SQLite's own busy timeout. Reads never take the lock (WAL readers do not block).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

WAIT_SECONDS = 30.0  # as long as the busy timeout; then the same "database is locked" error
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def lock_for(database: str) -> threading.Lock:
    """The process-wide writer lock of one database file."""
    with _locks_guard:
        return _locks.setdefault(database, threading.Lock())


def _writes(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITES)


class QueuedWriterConnection(sqlite3.Connection):
    """``sqlite3.Connection`` (the ``factory`` of ``sqlite3.connect``) whose transactions take
    their file's writer lock at the first write and release it at commit or rollback."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._writer_lock = lock_for(
            os.path.abspath(database) if str(database) != ":memory:" else ""
        )
        self._holding = False

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:  # type: ignore[override]
        return super().cursor(factory or QueuedWriterCursor)

    def take_writer_lock(self) -> None:
        if self._holding or self.in_transaction:
            return
        if not self._writer_lock.acquire(timeout=WAIT_SECONDS):
            raise sqlite3.OperationalError(
                f"database is locked: another thread of this process has been writing for "
                f"{WAIT_SECONDS:.0f} s"
            )
        self._holding = True

    def give_back_writer_lock(self) -> None:
        if self._holding:
            self._holding = False
            self._writer_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_back_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_back_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_back_writer_lock()


class QueuedWriterCursor(sqlite3.Cursor):
    connection: QueuedWriterConnection

    def _before(self, sql: str) -> None:
        if _writes(sql):
            self.connection.take_writer_lock()

    def _after(self) -> None:
        # No transaction open after the statement (it failed before SQLite began one, or the
        # connection is in autocommit mode): nothing is left to commit, so nothing to hold.
        if not self.connection.in_transaction:
            self.connection.give_back_writer_lock()

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        self._before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self._after()

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:  # type: ignore[override]
        self._before(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self._after()
