"""``nurture report NAME``: the read model's reports on a terminal, as JSON or as CSV."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.panel import Panel

from nurture.cli.output import JsonOpt, console, fail, print_json, table
from nurture.reports import ReportError, ReportQuery, run_report, to_csv
from nurture.reports.base import query_problems
from nurture.runtime.process import exit_now
from nurture.store.db import database_url_from_env, make_engine

EXIT_USAGE = 2


def parse_when(value: str | None, option: str) -> datetime | None:
    """A date (``2026-11-01``) or a time with a zone (``2026-11-01T09:00:00+01:00``); a bare
    date or a time without a zone is read as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date or time; use 2026-11-01 or 2026-11-01T09:00:00Z",
            param_hint=option,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def report_command(
    name: Annotated[
        str, typer.Argument(help="funnel, sla, returns, influence, cost or engagement")
    ],
    since: Annotated[str | None, typer.Option(help="period start (date or time)")] = None,
    until: Annotated[str | None, typer.Option(help="period end, exclusive")] = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="one table as CSV")] = False,
    table_name: Annotated[
        str | None, typer.Option("--table", help="which table --csv prints")
    ] = None,
    target: Annotated[
        float, typer.Option(help="returns: highest acceptable share of handoffs rejected")
    ] = 0.25,
    min_handoffs: Annotated[
        int, typer.Option(help="returns: handoffs a threshold needs to count as evidence")
    ] = 20,
    band: Annotated[int, typer.Option(help="returns: score band width")] = 10,
    cadence: Annotated[
        str | None, typer.Option(help="engagement: only this cadence (its id)")
    ] = None,
) -> None:
    """A report over the read model, for a period (default: all time)."""
    try:
        query = ReportQuery(
            since=parse_when(since, "--since"),
            until=parse_when(until, "--until"),
            target_return_rate=target,
            min_handoffs=min_handoffs,
            band_width=band,
            cadence=cadence,
        )
    except ValidationError as exc:
        exit_now(fail(query_problems(exc), EXIT_USAGE))
    try:
        result = run_report(make_engine(database_url_from_env()), name, query)
        if as_csv:
            sys.stdout.write(to_csv(result, table_name))
            return
    except ReportError as exc:
        exit_now(fail(str(exc), EXIT_USAGE))
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    period = (f"{query.since:%Y-%m-%d %H:%M} .. " if query.since else "all time .. ") + (
        f"{query.until:%Y-%m-%d %H:%M}" if query.until else "now"
    )
    lines = [f"{key}: {value}" for key, value in result.summary.items()]
    console.print(Panel("\n".join(lines) or "(no data)", title=f"{result.title}  ({period})"))
    for t in result.tables:
        columns, rows = readable_durations(t.columns, t.rows)
        console.print(table(t.title, columns, rows))
    for note in result.notes:
        console.print(note, style="dim")


HOURS_SUFFIX = "_hours"


def readable_durations(
    columns: list[str], rows: list[list[Any]]
) -> tuple[list[str], list[list[Any]]]:
    """Columns in hours (``median_hours``) shown with a unit chosen from each value's size
    (``12 s``, ``4.5 min``, ``3.2 h``, ``6.5 d``): under ``--time-scale`` a stay lasts seconds,
    which read ``0.0`` hours. JSON and CSV keep the hours."""
    in_hours = [c.endswith(HOURS_SUFFIX) for c in columns]
    if not any(in_hours):
        return columns, rows
    headers = [
        c.removesuffix(HOURS_SUFFIX) if h else c for c, h in zip(columns, in_hours, strict=True)
    ]
    shown = [
        [duration_text(v) if h and v is not None else v for v, h in zip(row, in_hours, strict=True)]
        for row in rows
    ]
    return headers, shown


def duration_text(hours: float) -> str:
    seconds = float(hours) * 3600
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
