"""Everything we hold on one person, as one JSON document (GDPR article 15, CCPA "right to know").

Two sources, put together here:

- Temporal: the lead workflow's ``state`` query (the lead as it is now), the workflow itself
  (status, runs) and what its histories sent the CRM. The client layer reads them
  (``nurture.client.lead_holdings``) and hands them in as :class:`TemporalHoldings`; a closed or
  missing workflow is said in ``missing``, never a failure.
- The engine database: **every table that has a ``lead_id`` column**, found in the SQLModel
  metadata, so a table added later (consents, preferences) appears without a change here; and
  rows keyed by the address instead (the suppression list, webhook events that matched no lead),
  found through every address the lead has had. One query per table, whatever the lead's size.

Sections come in a fixed order; the database's are named after their tables, sorted. Times are
ISO 8601 with their offset (UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from nurture.contract.messages import LeadState
from nurture.domain.leads import LEAD_ID_PATTERN
from nurture.domain.scoring import explain
from nurture.store import (  # noqa: F401  (their tables: the metadata)
    read_model,
    rules_history,
    rules_status,
)
from nurture.store.db import Suppression
from nurture.store.salted import address_digest, salt_of

SCHEMA_VERSION = 1
LEAD_ID_RULE = (
    "a lead id is 1 to 200 letters, digits and . _ : @ + -, starting with a letter or digit"
)
LEAD_COLUMN = "lead_id"
ADDRESS_COLUMNS = ("email",)
"""Columns holding an address (lower-cased): rows there are the person's when the address is
one of theirs, whichever lead (or none) the row names."""
OUTBOX_TABLE = "outboxmessage"
WHAT_TABLES_HOLD = {
    "handoff": "hand-offs to sales",
    "lead": "the lead as last reported",
    "leadevent": "events",
    "outboxmessage": "emails as sent",
    "outcome": "won or lost",
    "repassignment": "routing turns",
    "salesassignment": "rep turns and SLA",
    "salestask": "tasks",
    "scorechange": "score history",
    "stagetransition": "stage moves",
    "suppression": "suppression entries",
    "touch": "touches",
    "webhookevent": "SendGrid events",
}
"""Words for the CLI's overview; a table not named here shows under its own name."""
TIME_COLUMNS = ("at", "created_at", "received_at")
"""A table's rows are listed in time order by the first of these it has, then by its key."""


@dataclass(frozen=True)
class TemporalHoldings:
    """What Temporal holds on the lead, as the client layer read it."""

    workflow: dict[str, Any] | None
    """The workflow: its id, status, when it started and closed, its runs (None: no workflow)."""
    state: LeadState | None
    """The ``state`` query's answer (None: it could not be asked; ``missing`` says why)."""
    crm_pushes: list[dict[str, Any]] = field(default_factory=list)
    """Every CRM write the lead's histories hold (lead upserts and activity notes)."""
    missing: list[str] = field(default_factory=list)
    """What could not be read from Temporal, and why, in words."""

    @property
    def anything(self) -> bool:
        return self.workflow is not None or self.state is not None


class NothingHeldError(LookupError):
    """Neither Temporal nor the database holds anything on this lead id."""


def can_be_a_lead_id(value: str) -> bool:
    """Whether any lead can have this id (those from before '@' was refused too): anything
    else is held nowhere, and is answered so before Temporal or the database is asked."""
    return re.fullmatch(LEAD_ID_PATTERN, value) is not None


def lead_tables(metadata: sa.MetaData = SQLModel.metadata) -> list[sa.Table]:
    """Every table that names a lead in a ``lead_id`` column, by name."""
    return sorted(
        (t for t in metadata.tables.values() if LEAD_COLUMN in t.columns), key=lambda t: t.name
    )


def address_tables(metadata: sa.MetaData = SQLModel.metadata) -> list[sa.Table]:
    """Every table with an address column (see :data:`ADDRESS_COLUMNS`), by name."""
    return sorted(
        (t for t in metadata.tables.values() if any(c in t.columns for c in ADDRESS_COLUMNS)),
        key=lambda t: t.name,
    )


def build_document(
    engine: Engine,
    lead_id: str,
    temporal: TemporalHoldings,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The export of ``lead_id``: raises :class:`NothingHeldError` when nothing anywhere holds
    it (an unknown lead)."""
    with engine.connect() as conn:
        records = stored_records(conn, lead_id, _addresses_in_state(temporal.state))
    if not temporal.anything and not any(records.values()):
        raise NothingHeldError(f"no lead {lead_id!r}: neither Temporal nor the database holds it")
    state = temporal.state
    profile = state.profile.model_dump(mode="json") if state else _profile_from(records)
    missing = [*temporal.missing]
    if state is None and profile is not None:
        missing.append("profile: taken from the read model (the lead as last reported)")
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(generated_at or datetime.now(UTC)),
        "lead_id": lead_id,
        "missing": missing,
        "workflow": temporal.workflow,
        "profile": profile,
        "score": _score(state),
        "state": state.model_dump(mode="json") if state else None,
        "crm_pushes": temporal.crm_pushes,
        "records": records,
    }


def stored_records(
    conn: Connection,
    lead_id: str,
    addresses: Iterable[str] = (),
    metadata: sa.MetaData = SQLModel.metadata,
) -> dict[str, list[dict[str, Any]]]:
    """Every row the database holds on the lead, per table (every table of
    :func:`lead_tables` and :func:`address_tables`, empty ones too), in time order.

    The addresses searched are ``addresses`` and every address the lead's own rows hold (its
    read-model row, the emails it was sent): an address it had before an edit finds its
    suppression entry and webhook events too."""
    found: dict[str, list[dict[str, Any]]] = {}
    for table in lead_tables(metadata):
        rows = conn.execute(
            sa.select(table).where(table.c[LEAD_COLUMN] == lead_id).order_by(*_order(table))
        )
        found[table.name] = [_jsonable(row) for row in rows.mappings()]
    known = {a.strip().lower() for a in addresses if a} | _addresses_in(found)
    for table in address_tables(metadata):
        if not known:
            found.setdefault(table.name, [])
            continue
        matches = [
            sa.func.lower(table.c[name]).in_(sorted(known))
            for name in ADDRESS_COLUMNS
            if name in table.columns
        ]
        keyed_elsewhere = (
            sa.or_(*matches)
            if LEAD_COLUMN not in table.columns
            else sa.and_(sa.or_(*matches), _not_this_lead(table, lead_id))
        )
        rows = conn.execute(sa.select(table).where(keyed_elsewhere).order_by(*_order(table)))
        _add_rows(found, table, rows)
    _add_suppressions_of(conn, lead_id, known, found)
    return dict(sorted(found.items()))


def _add_suppressions_of(
    conn: Connection, lead_id: str, addresses: set[str], found: dict[str, list[dict[str, Any]]]
) -> None:
    """The suppression entries of the lead's addresses that another lead, or an event of no
    known lead, put there: the list keeps digests, so the addresses are looked up as such."""
    table = SQLModel.metadata.tables[str(Suppression.__tablename__)]
    if not addresses:
        return
    salt = salt_of(conn.engine)
    digests = sorted(address_digest(salt, address) for address in addresses)
    rows = conn.execute(
        sa.select(table).where(table.c.email_hash.in_(digests), _not_this_lead(table, lead_id))
    )
    _add_rows(found, table, rows)


def _add_rows(
    found: dict[str, list[dict[str, Any]]], table: sa.Table, rows: sa.CursorResult[Any]
) -> None:
    """``rows`` of ``table`` added to those found already, in the table's time order."""
    more = [_jsonable(row) for row in rows.mappings()]
    found[table.name] = sorted(
        [*found.get(table.name, []), *more], key=lambda row: _sort_key(table, row)
    )


def summary(document: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Each section of an export and how many items it holds (for the CLI's overview)."""
    state = document.get("state")
    lines: list[tuple[str, int]] = [
        ("workflow", 1 if document.get("workflow") else 0),
        ("profile", 1 if document.get("profile") else 0),
        ("score explanation", len((document.get("score") or {}).get("explanation", []))),
        ("state", 1 if state else 0),
        ("state: timeline", len(state["timeline"]) if state else 0),
        ("crm_pushes", len(document.get("crm_pushes", []))),
    ]
    lines += [
        (
            f"records: {name}"
            + (f" ({WHAT_TABLES_HOLD[name]})" if name in WHAT_TABLES_HOLD else ""),
            len(rows),
        )
        for name, rows in document["records"].items()
    ]
    return lines


# --- helpers ------------------------------------------------------------------------------------


def _addresses_in_state(state: LeadState | None) -> list[str]:
    return [state.profile.email] if state and state.profile.email else []


def _addresses_in(found: Mapping[str, list[dict[str, Any]]]) -> set[str]:
    """The lead's addresses in its own rows: its read-model row's, and those its marketing
    emails went to (rep alerts go to the rep)."""
    addresses = {row["email"] for row in found.get(read_model.LeadRecord.__tablename__, [])}
    addresses |= {
        row["to_email"] for row in found.get(OUTBOX_TABLE, []) if row.get("category") == "touch"
    }
    return {a.strip().lower() for a in addresses if isinstance(a, str) and a}


def _not_this_lead(table: sa.Table, lead_id: str) -> sa.ColumnElement[bool]:
    """Rows of an address table not already found by the lead's id (another lead's, or none)."""
    column = table.c[LEAD_COLUMN]
    return sa.or_(column.is_(None), column != lead_id)


def _order(table: sa.Table) -> list[sa.Column[Any]]:
    time = next((table.c[name] for name in TIME_COLUMNS if name in table.columns), None)
    return [*([time] if time is not None else []), *table.primary_key.columns]


def _sort_key(table: sa.Table, row: Mapping[str, Any]) -> tuple[str, ...]:
    """The same order as :func:`_order`, on rows already made JSON (ISO times sort as text)."""
    return tuple(str(row[c.name] or "") for c in _order(table))


def _jsonable(row: sa.RowMapping) -> dict[str, Any]:
    return {str(name): _value(value) for name, value in row.items()}


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _iso(moment: datetime) -> str:
    """ISO 8601 with the offset; the database's naive times are UTC (SQLite keeps no zone)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _score(state: LeadState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "total": state.score.total,
        "fit_points": state.score.fit_points,
        "behaviour_points": state.score.behaviour_points,
        "grade": state.grade,
        "explanation": [
            {"rule": rule, "points": points, "times": times}
            for rule, points, times in explain(state.score)
        ],
    }


def _profile_from(records: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The profile as the read model last saw it, for a lead whose workflow is gone."""
    rows = records.get(read_model.LeadRecord.__tablename__) or []
    if not rows:
        return None
    kept = ("lead_id", "email", "name", "company", "title", "industry", "country", "campaign")
    return {name: rows[0].get(name) for name in kept}
