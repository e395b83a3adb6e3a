"""SQLite writers of one process queue on a lock instead of sleeping in SQLite's busy handler
(``nurture.store.sqlite_writers``): every write lands, and a transaction that ends in any way gives
the lock back, so the next writer never waits out the timeout."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from nurture.store import sqlite_writers
from nurture.store.db import RoundRobinTurn, make_engine


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")


@pytest.fixture
def other_engine(engine):  # type: ignore[no-untyped-def]
    """Another pool on the same file (as another component of the worker would have): its
    connections must wait for the lock, not inherit it."""
    return make_engine(str(engine.url))


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock left held shows up as an error within a second, not after 30 s."""
    monkeypatch.setattr(sqlite_writers, "WAIT_SECONDS", 1.0)


def test_many_threads_writing_at_once_all_land(engine) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                with Session(engine) as session:
                    session.add(RoundRobinTurn(pool=f"pool-{n}-{i}", turns=i))
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM roundrobinturn")).scalar() == 16 * 20


def test_a_failed_write_and_its_rollback_give_the_lock_back(
    engine, other_engine, impatient
) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        session.add(RoundRobinTurn(pool="emea", turns=1))
        session.commit()
    with pytest.raises(IntegrityError), Session(engine) as session:
        session.add(RoundRobinTurn(pool="emea", turns=2))  # the same key again
        session.commit()

    def other_thread_writes() -> None:
        with Session(other_engine) as session:
            session.add(RoundRobinTurn(pool="apac", turns=1))
            session.commit()

    _in_thread(other_thread_writes)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM roundrobinturn")).scalar() == 2


def test_an_open_write_makes_other_threads_wait_and_a_read_does_not(
    engine, other_engine, impatient
) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as reader:  # reads take no lock: a writer elsewhere goes ahead
        reader.execute(text("SELECT count(*) FROM roundrobinturn")).scalar()
        _in_thread(lambda: _insert(other_engine, "amer"))

    with engine.connect() as writer:
        writer.execute(text("INSERT INTO roundrobinturn (pool, turns) VALUES ('emea', 1)"))
        with pytest.raises(OperationalError, match="another thread of this process"):
            _in_thread(lambda: _insert(other_engine, "apac"))
        writer.rollback()
    _in_thread(lambda: _insert(other_engine, "apac"))  # the rollback gave it back

    with engine.connect() as conn:
        pools = conn.execute(text("SELECT pool FROM roundrobinturn ORDER BY pool")).scalars()
        assert list(pools) == ["amer", "apac"]


def _insert(engine, pool: str) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO roundrobinturn (pool, turns) VALUES (:p, 1)"), {"p": pool})


def _in_thread(work) -> None:  # type: ignore[no-untyped-def]
    """Run ``work`` in another thread (the lock is per process, so a thread shows it) and
    raise what it raised."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
