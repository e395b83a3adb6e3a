"""Write the read model: stage transitions (runs from before the ledger) and fact batches.

Every write is idempotent. Append-only facts are inserted with ON CONFLICT DO NOTHING on their
key; rows that change over time are upserted only when the incoming ``version`` is newer, so a
retried or late batch can neither double-count nor roll a row back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from typing import Any

import structlog
from sqlalchemy import String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session, SQLModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from nurture.contract.ledger import RECORD_FACTS, FactBatch
from nurture.contract.messages import RECORD_TRANSITION, TransitionRecord
from nurture.store.db import StageTransition
from nurture.store.group_commit import GroupCommit
from nurture.store.read_model import (
    ConsentRow,
    DealOutcome,
    HandoffRecord,
    LeadEventRecord,
    LeadRecord,
    SalesAssignment,
    ScoreChange,
    TopicChoiceRow,
    TouchRecord,
    table_of,
)

APPEND_ONLY: dict[str, type[SQLModel]] = {
    "event": LeadEventRecord,
    "score": ScoreChange,
    "transition": StageTransition,
    "touch": TouchRecord,
    "outcome": DealOutcome,
    "consent": ConsentRow,
    "topic_choice": TopicChoiceRow,
}
log = structlog.get_logger(__name__)
VERSIONED: dict[str, type[SQLModel]] = {
    "handoff": HandoffRecord,
    "assignment": SalesAssignment,
}


class RecordActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Leads whose batches arrive together share a transaction (nurture/store/group_commit).
        self._facts: GroupCommit[FactBatch] = GroupCommit(
            lambda batches: write_batches(engine, batches),
            isolate=lambda exc: isinstance(exc, DataError),
        )

    @activity.defn(name=RECORD_TRANSITION)
    def record_transition(self, record: TransitionRecord) -> None:
        with Session(self.engine) as session:
            if session.get(StageTransition, record.key) is not None:
                return
            session.add(StageTransition(**record.model_dump(exclude={"kind"})))
            try:
                session.commit()
            except IntegrityError:  # a concurrent retry got there first: same row, done
                session.rollback()

    @activity.defn(name=RECORD_FACTS)
    def record_facts(self, batch: FactBatch) -> None:
        try:
            # Temporal cancels a local activity past its timeout by raising in its thread:
            # held until the write is done, never inside the database driver or a group.
            with activity.shield_thread_cancel_exception():
                self._facts.write(batch)
        except DataError as exc:
            # Retrying cannot help a value the database refuses; the lead must not queue
            # every later fact behind it. The batch is logged whole and dropped.
            log.error(
                "read model refused a batch",
                lead_id=batch.lead_id,
                facts=[f.key for f in batch.facts],
                error=str(exc.orig or exc)[:500],
            )
            raise ApplicationError(
                f"the read model refused lead {batch.lead_id}'s facts: {exc.orig or exc}",
                type="ReadModelRejected",
                non_retryable=True,
            ) from exc


def write_batch(engine: Engine, batch: FactBatch) -> None:
    """Write one lead's batch in one transaction, in the order the facts happened."""
    write_batches(engine, [batch])


def write_batches(engine: Engine, batches: Sequence[FactBatch]) -> None:
    """Write several leads' batches in one transaction (bulk loads write thousands at once)."""
    appended: dict[str, list[dict[str, Any]]] = {}
    versioned: dict[str, dict[str, dict[str, Any]]] = {}
    leads: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for fact in batch.facts:
            row = fact.model_dump(exclude={"kind"})
            for later in getattr(fact, "LATER_FIELDS", ()):  # left out of its JSON when empty
                row.setdefault(later, getattr(fact, later))  # one column set per table
            row["lead_id"] = batch.lead_id
            if fact.kind in APPEND_ONLY:
                if fact.kind == "transition":
                    row["workflow_id"] = batch.lead.workflow_id
                appended.setdefault(fact.kind, []).append(_fit(APPEND_ONLY[fact.kind], row))
            else:  # rows written again as they change: the newest version in hand counts
                _keep_newest(
                    versioned.setdefault(fact.kind, {}), _fit(VERSIONED[fact.kind], row), "key"
                )
        _keep_newest(leads, _fit(LeadRecord, batch.lead.model_dump()), "lead_id")
    with engine.begin() as conn:
        for kind, rows in appended.items():
            _insert_new(conn, table_of(APPEND_ONLY[kind]), rows)
        for kind, by_key in versioned.items():
            _upsert_newer(conn, table_of(VERSIONED[kind]), "key", list(by_key.values()))
        _upsert_newer(conn, table_of(LeadRecord), "lead_id", list(leads.values()))


def _fit(model: type[SQLModel], row: dict[str, Any]) -> dict[str, Any]:
    """Text as the columns take it: NUL characters (PostgreSQL refuses them) removed and
    values longer than a bounded column cut, so one odd value never blocks a lead's facts."""
    limits = _text_limits(model)
    for name, value in row.items():
        if isinstance(value, str):
            if "\x00" in value:
                value = value.replace("\x00", "")
            limit = limits.get(name)
            if limit is not None and len(value) > limit:
                # A key must stay unique when cut: its tail becomes a digest of the whole.
                digest = hashlib.sha256(value.encode()).hexdigest()[:16]
                value = f"{value[: limit - 17]}~{digest}" if name == "key" else value[:limit]
            row[name] = value
    return row


@cache
def _text_limits(model: type[SQLModel]) -> dict[str, int | None]:
    limits: dict[str, int | None] = {}
    for column in table_of(model).columns:
        kind = getattr(column.type, "impl", column.type)  # SQLModel's AutoString decorates
        if isinstance(kind, String):
            limits[column.name] = kind.length
    return limits


def _keep_newest(rows: dict[str, dict[str, Any]], row: dict[str, Any], key: str) -> None:
    held = rows.get(row[key])
    if held is None or held["version"] < row["version"]:
        rows[row[key]] = row


def _dialect_insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"the read model supports SQLite and PostgreSQL, not {dialect}")


@cache
def _insert_statement(dialect: str, table: Table) -> Any:
    return _dialect_insert(dialect, table).on_conflict_do_nothing()


@cache
def _upsert_statement(dialect: str, table: Table, key: str, columns: tuple[str, ...]) -> Any:
    """Built once per table and column set: constructing ``excluded`` costs more than the
    write of a lead's few rows (SQLAlchemy caches the compiled SQL, not the construct)."""
    statement = _dialect_insert(dialect, table)
    return statement.on_conflict_do_update(
        index_elements=[key],
        set_={name: statement.excluded[name] for name in columns if name != key},
        where=table.c.version < statement.excluded.version,
    )


def _insert_new(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    conn.execute(_insert_statement(conn.dialect.name, table), list(rows))


def _upsert_newer(conn: Connection, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        statement = _upsert_statement(conn.dialect.name, table, key, tuple(rows[0]))
        conn.execute(statement, list(rows))
