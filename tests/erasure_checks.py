"""What the erasure tests check the database with: every report's figures, and every text
value it holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from nurture.reports import REPORTS, ReportQuery, run_report
from nurture.store.personal import is_text


def report_figures(engine: Engine, now: datetime) -> dict[str, object]:
    """Every report over all time as of ``now``, without when it was made."""
    query = ReportQuery(now=now)
    return {
        name: run_report(engine, name, query).model_dump(mode="json", exclude={"generated_at"})
        for name in sorted(REPORTS)
    }


def text_cells(engine: Engine, skip_leads: set[str]) -> list[tuple[str, str, str]]:
    """Every non-empty text value in the database, (table, column, value), but in rows of the
    leads in ``skip_leads`` (synthetic people may share a name)."""
    cells = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            keyed = "lead_id" in table.c
            for column in table.columns:
                if not is_text(column):
                    continue
                query = select(column).where(column.is_not(None))
                if keyed and skip_leads:
                    query = query.where(table.c.lead_id.not_in(skip_leads))
                for (value,) in conn.execute(query):
                    if value:
                        cells.append((table.name, column.name, str(value)))
    return cells
