"""What every report is: a period in, headline figures and tables out.

A report is a function ``(engine, ReportQuery) -> Report`` registered under a name; the CLI
(``nurture report NAME``), the HTTP API (``/api/reports/NAME``) and the dashboard all go
through :func:`run_report`. Reports aggregate in SQL (window functions, GROUP BY) so they stay
fast at 100k leads and a million events; Python only shapes the few result rows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy import ColumnElement, Float, FunctionElement, Select, and_, case, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from nurture.store.campaigns import MAX_AMOUNT

# Reports cover what the engine can have recorded: nothing before 1970 or after 2200. Bounding
# the period here (the one place the CLI, the API and the dashboard share) also keeps every
# conversion to UTC inside what ``datetime`` can hold: 0001-01-01T00:00+14:00 is before year 1.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


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
    cadence: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="engagement: only this cadence (its id)",
    )
    now: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("since", "until")
    @classmethod
    def _sane(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        utc = _utc_or_none(value)
        if utc is None or not EARLIEST <= utc <= LATEST:  # both ends given in the message
            raise ValueError(
                f"{value.isoformat()} is outside the dates reports cover: give a date from "
                f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (2026-11-01, or 2026-11-01T09:00+01:00)"
            )
        return aware(value)  # a date or a time without a zone is UTC, and says so

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
    return _finite(REPORTS[name][1](engine, query))


def _finite(result: Report) -> Report:
    """Refuse a report whose sums overflowed (amounts entered before they were bounded): an
    ``inf`` would reach JSON as null and a tile as "USD inf"."""
    values = [*result.summary.items()] + [
        (f"{table.name}.{column}", value)
        for table in result.tables
        for row in table.rows
        for column, value in zip(table.columns, row, strict=True)
    ]
    beyond = sorted({k for k, v in values if isinstance(v, float) and not math.isfinite(v)})
    if beyond:
        raise ReportError(
            f"the {result.name} report adds up amounts beyond what can be counted "
            f"({', '.join(beyond[:5])}): correct the amounts entered over {MAX_AMOUNT:,.0f} "
            "(campaign costs, deal amounts)"
        )
    return result


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


def _utc_or_none(value: datetime) -> datetime | None:
    """``value`` in UTC, or None when that is beyond what ``datetime`` can hold."""
    try:
        return aware(value).astimezone(UTC)
    except OverflowError:
        return None


class seconds_between(FunctionElement[float]):
    """``later - earlier`` in seconds, for two timestamp columns, on SQLite and PostgreSQL."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(seconds_between)
def _seconds_between_elsewhere(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"seconds_between: no SQL for {compiler.dialect.name}")


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


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


# --- durations for people ---------------------------------------------------------------------

# (unit, seconds in it, the largest span shown in it): 90 s, not 1.5 min; 3 h, not 0.1 d. Under
# --time-scale a lead's stays last seconds, which a fixed unit (hours) would show as 0.0.
DURATION_UNITS: tuple[tuple[str, float, float], ...] = (
    ("s", 1.0, 120.0),
    ("min", 60.0, 120 * 60.0),
    ("h", 3600.0, 72 * 3600.0),
    ("d", 86400.0, float("inf")),
)


def duration_unit(seconds: float) -> tuple[str, float]:
    """The unit to show ``seconds`` (the largest of a set) in, and how many seconds it has."""
    for unit, size, largest in DURATION_UNITS:
        if abs(seconds) < largest:
            return unit, size
    return DURATION_UNITS[-1][0], DURATION_UNITS[-1][1]


def format_duration(seconds: float | None) -> str | None:
    """``4.2 h``, ``35 min``, ``12 s``, ``3.5 d``: three significant digits in a unit that
    suits the magnitude."""
    if seconds is None:
        return None
    unit, size = duration_unit(seconds)
    return f"{seconds / size:.3g} {unit}"
