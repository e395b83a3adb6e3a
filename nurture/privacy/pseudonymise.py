"""Erasing a lead from the engine's database while keeping the reports' counts and sums.

Every table with a ``lead_id`` column (found from the tables' metadata, so a table added later
is covered the day it exists) has the lead's rows rewritten in one transaction: columns
declared personal (``nurture.store.personal``) are cleared (NULL, or empty where a value is
required), ``lead_id`` becomes a pseudonym, and the lead id inside the rows' keys and workflow
ids becomes the pseudonym too, so no row is found by the lead id afterwards (an export finds
nothing) while every count, sum and join of the reports stays as it was.

Rows that name one of the person's addresses without naming the lead (a provider's event for
an address no lead matched) have their personal columns cleared by :func:`forget_addresses`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from sqlalchemy import Column, Table, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from nurture.store.personal import is_text, personal_columns
from nurture.store.salted import normalised_address

LEAD_COLUMN = "lead_id"
ADDRESS_COLUMNS = frozenset({"email", "to_email"})


def lead_tables() -> list[Table]:
    """Every table keyed by lead (dependencies first)."""
    return [t for t in SQLModel.metadata.sorted_tables if LEAD_COLUMN in t.c]


def pseudonymise(engine: Engine, lead_id: str, pseudonym: str) -> dict[str, int]:
    """Rewrite the lead's rows under ``pseudonym`` (see the module's docstring); return how
    many rows of each table carry the pseudonym now (the same answer when run again)."""
    with engine.begin() as conn:
        for table in lead_tables():
            _rewrite(conn, table, lead_id, pseudonym)
        counts = {
            table.name: int(
                conn.execute(
                    select(func.count()).select_from(table).where(table.c[LEAD_COLUMN] == pseudonym)
                ).scalar_one()
            )
            for table in lead_tables()
        }
    return {name: count for name, count in counts.items() if count}


def forget_addresses(engine: Engine, addresses: Collection[str]) -> int:
    """Clear the personal columns of every row whose address column names one of
    ``addresses`` (any table); return how many rows."""
    wanted = sorted({normalised_address(a) for a in addresses if a})
    if not wanted:
        return 0
    cleared = 0
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            personal = personal_columns(table)
            for column in (c for c in personal if c.name in ADDRESS_COLUMNS):
                result = conn.execute(
                    update(table)
                    .where(func.lower(func.trim(column)).in_(wanted))
                    .values(_cleared(personal))
                )
                cleared += int(result.rowcount or 0)
    return cleared


def _cleared(columns: list[Column[Any]]) -> dict[str, Any]:
    return {c.name: None if c.nullable else "" for c in columns}


def _naming_columns(table: Table) -> list[Column[Any]]:
    """Text columns that may hold the lead id inside a longer value: keys (primary or unique),
    workflow ids, and the touch key a SendGrid event refers to."""
    return [
        c
        for c in table.columns
        if c.name != LEAD_COLUMN
        and is_text(c)
        and (c.primary_key or c.unique or c.name in ("workflow_id", "touch_key"))
    ]


def _rewrite(conn: Connection, table: Table, lead_id: str, pseudonym: str) -> None:
    cleared = _cleared(personal_columns(table))
    lead = table.c[LEAD_COLUMN]
    naming = _naming_columns(table)
    if not naming:
        conn.execute(
            update(table).where(lead == lead_id).values({**cleared, LEAD_COLUMN: pseudonym})
        )
        return
    key = list(table.primary_key.columns)
    wanted = list({c.name: c for c in [*key, *naming]}.values())
    pattern = re.compile(rf"(?<![^:-]){re.escape(lead_id)}(?![^:])")
    for row in conn.execute(select(*wanted).where(lead == lead_id)).mappings().all():
        renamed = {
            c.name: pattern.sub(lambda _: pseudonym, row[c.name])
            if row[c.name] is not None
            else None
            for c in naming
        }
        conn.execute(
            update(table)
            .where(*(c == row[c.name] for c in key))
            .values({**cleared, **renamed, LEAD_COLUMN: pseudonym})
        )
