"""What every report is: a period in, headline figures and tables out.

A report is a function ``(engine, ReportQuery) -> Report`` registered under a name; the CLI
(``nurture report NAME``), the HTTP API (``/api/reports/NAME``) and the dashboard all go
through :func:`run_report`. Reports aggregate in SQL (window functions, GROUP BY) so they stay
fast at 100k leads and a million events; Python only shapes the few result rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.engine import Engine


class ReportError(ValueError):
    """The report cannot be made as asked; the message says what to change."""


class UnknownReportError(ReportError):
    pass


class ReportQuery(BaseModel):
    """What a report covers. ``since``/``until`` bound the period (``until`` exclusive);
    either may be left open."""

    since: datetime | None = None
    until: datetime | None = None
    target_return_rate: float = Field(
        default=0.25, gt=0, lt=1, description="returns: the highest acceptable return share"
    )
    min_handoffs: int = Field(
        default=20, ge=1, description="returns: handoffs a threshold needs to count as evidence"
    )
    band_width: int = Field(default=10, ge=1, le=1000, description="returns: score band size")
    now: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _ordered(self) -> ReportQuery:
        if self.since and self.until and aware(self.since) >= aware(self.until):
            raise ValueError(
                f"since ({self.since:%Y-%m-%d %H:%M}) must be before until "
                f"({self.until:%Y-%m-%d %H:%M})"
            )
        return self

    def in_period(self, column: Any) -> ColumnElement[bool]:
        """``column`` inside [since, until)."""
        conditions: list[ColumnElement[bool]] = []
        if self.since is not None:
            conditions.append(column >= aware(self.since))
        if self.until is not None:
            conditions.append(column < aware(self.until))
        return and_(True, *conditions)


def query_problems(exc: ValidationError) -> str:
    """What is wrong with a report's parameters, in one line for a person."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


class ReportTable(BaseModel):
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = Field(default_factory=list)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Report(BaseModel):
    name: str
    title: str
    since: datetime | None
    until: datetime | None
    generated_at: datetime
    summary: dict[str, Any] = Field(default_factory=dict)
    tables: list[ReportTable] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def table(self, name: str) -> ReportTable:
        for t in self.tables:
            if t.name == name:
                return t
        raise ReportError(
            f"report {self.name!r} has no table {name!r}; it has: "
            + ", ".join(t.name for t in self.tables)
        )


ReportBuilder = Callable[[Engine, ReportQuery], Report]
REPORTS: dict[str, tuple[str, ReportBuilder]] = {}


def report(name: str, title: str) -> Callable[[ReportBuilder], ReportBuilder]:
    """Register a report builder under ``name``."""

    def register(builder: ReportBuilder) -> ReportBuilder:
        REPORTS[name] = (title, builder)
        return builder

    return register


def run_report(engine: Engine, name: str, query: ReportQuery) -> Report:
    import nurture.reports  # noqa: F401  (registers every report)

    if name not in REPORTS:
        raise UnknownReportError(
            f"no report {name!r}; the reports are: {', '.join(sorted(REPORTS))}"
        )
    return REPORTS[name][1](engine, query)


def new_report(name: str, query: ReportQuery, **fields: Any) -> Report:
    return Report(
        name=name,
        title=REPORTS[name][0],
        since=query.since,
        until=query.until,
        generated_at=query.now,
        **fields,
    )


def to_csv(report: Report, table: str | None = None) -> str:
    """One table of the report as CSV (the first one unless ``table`` names another)."""
    chosen = report.table(table) if table else report.tables[0]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(chosen.columns)
    for row in chosen.rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


# --- SQL helpers ------------------------------------------------------------------------------


def aware(value: datetime) -> datetime:
    """A time with a zone (a naive one is read as UTC), as the read model's columns expect."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def percentiles(
    source: Select[Any], group: Sequence[str], value: str, points: Sequence[float]
) -> Select[Any]:
    """Nearest-rank percentiles of ``value`` per ``group`` columns of ``source``, in SQL that
    SQLite and PostgreSQL both run: each row is ranked in its group with window functions and
    the p-th percentile is the smallest value whose rank reaches p·n."""
    sub = source.subquery()
    groups = [sub.c[g] for g in group]
    ranked = select(
        *groups,
        sub.c[value].label("value"),
        func.row_number().over(partition_by=groups, order_by=sub.c[value]).label("rank"),
        func.count().over(partition_by=groups).label("n"),
    ).subquery()
    rgroups = [ranked.c[g] for g in group]
    columns = [
        func.min(case((ranked.c.rank >= p * ranked.c.n, ranked.c.value))).label(
            f"p{round(p * 100)}"
        )
        for p in points
    ]
    return select(*rgroups, func.max(ranked.c.n).label("n"), *columns).group_by(*rgroups)


def ratio(part: float | None, whole: float | None) -> float | None:
    if not whole:
        return None
    return round((part or 0) / whole, 4)
