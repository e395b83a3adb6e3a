"""Shared CLI plumbing: run async commands, print JSON or a table, exit with a real status."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from temporalio.client import Client, Interceptor
from temporalio.service import RPCError

from nurture.privacy.master_keys import MasterKeyError
from nurture.runtime.logging import configure_logging
from nurture.runtime.process import exit_now
from nurture.store.availability import unavailable_in_words

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
# No markup: what we print holds lead data, reasons and file names, which must show as they are
# ("[/bold]" in a name is text, not a style, and never a crash); styles are given as styles.
console = Console(markup=False)
errors = Console(stderr=True, markup=False)


def run(coro: Coroutine[Any, Any, int], interrupted_status: int = 130) -> None:
    """Run a command's coroutine and exit with its status, skipping interpreter teardown
    (see :mod:`nurture.runtime.process`). Ctrl-C exits with ``interrupted_status``."""
    try:
        status = asyncio.run(coro)
    except KeyboardInterrupt:
        status = interrupted_status
    except MasterKeyError as exc:  # e.g. a data key wrapped by a master key not given here
        status = fail(str(exc), 2)
    except RPCError as exc:  # the server went away or is not ready: say so, no traceback
        status = fail(
            f"Temporal answered {exc.status.name}: {exc.message}. Is the engine running and "
            "ready ('nurture up', TEMPORAL_ADDRESS)? Commands are safe to run again: events and "
            "profiles already sent are not applied twice when they carry 'at' or 'event_id'.",
            2,
        )
    exit_now(status)


def database_unavailable(exc: Exception) -> int:
    """Say that the database did not answer (the data keys, API keys and suppressions are
    there), without a traceback: exit 2, nothing more done."""
    return fail(
        f"the engine database did not answer ({unavailable_in_words(exc)}). Run the command "
        "again once it is back (NURTURE_DATABASE_URL): events and profiles already sent are not "
        "applied twice when they carry 'at' or 'event_id'.",
        2,
    )


async def connect_client(
    interceptors: Sequence[Interceptor] = (), *, patient: bool = True
) -> Client:
    """A client for the commands, ``patient`` with an overloaded Temporal
    (``nurture.client.patience``), and for ``nurture serve`` (which is not: its callers get 503
    at once; it traces with ``interceptors``)."""
    from nurture.client.patience import QUIET_RETRIES, Patience
    from nurture.client.sales import LeadActionError
    from nurture.client.temporal import TemporalSettings, connect
    from nurture.privacy.converter import encrypted_converter, key_store_from_env

    try:
        settings = TemporalSettings.from_env()
    except ValueError as exc:  # a half-set mTLS pair, a missing config file or profile
        raise LeadActionError(str(exc)) from exc
    try:
        converter = encrypted_converter(key_store_from_env())
    except MasterKeyError as exc:
        raise LeadActionError(str(exc)) from exc
    try:
        if not patient:
            return await connect(settings, converter, interceptors=interceptors)
        if not structlog.is_configured():  # a command: what it says while waiting, on stderr
            configure_logging(level="WARNING")
        chain = [Patience(), *interceptors]
        return await connect(settings, converter, interceptors=chain, retry_config=QUIET_RETRIES)
    except (RuntimeError, ValueError) as exc:  # unreachable, or its TLS settings incomplete
        raise LeadActionError(
            f"cannot reach Temporal at {settings.address} ({exc}); start the engine with "
            "'nurture up' or set TEMPORAL_ADDRESS"
        ) from exc


def fail(message: str, status: int = 1) -> int:
    errors.print(Text.assemble(("error:", "bold red"), f" {message}"), highlight=False)
    return status


def warn(message: str) -> None:
    errors.print(Text.assemble(("warning:", "yellow"), f" {message}"), highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> FittedTable:
    """A table for the terminal. Cells wrap rather than being cut; a header is never cut:
    when the columns cannot all fit the width (the terminal's, ``COLUMNS``, or 80 when the
    output is not a terminal), each row is printed as a block of ``header  value`` lines."""
    return FittedTable(title, columns, [["" if v is None else str(v) for v in row] for row in rows])


#: A column is never narrower than this many characters of its widest word (nor its header).
_MIN_CELL_WIDTH = 12


@dataclass(frozen=True)
class FittedTable:
    title: str
    columns: list[str]
    rows: list[list[str]]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if any(self.columns) and self._min_width() > options.max_width:
            yield from self._records()
        else:
            yield self._table()

    def _column_min_widths(self) -> list[int]:
        widths = []
        for index, header in enumerate(self.columns):
            words = (word for row in self.rows if index < len(row) for word in row[index].split())
            widest_word = max((len(word) for word in words), default=0)
            widths.append(max(len(header), min(widest_word, _MIN_CELL_WIDTH)))
        return widths

    def _min_width(self) -> int:
        # A heavy-head box: one rule per column plus the right edge, one space either side.
        return sum(self._column_min_widths()) + 3 * len(self.columns) + 1

    def _table(self) -> Table:
        out = Table(title=self.title, title_justify="left", show_header=any(self.columns))
        for header, min_width in zip(self.columns, self._column_min_widths(), strict=True):
            out.add_column(header, min_width=min_width, overflow="fold")
        for row in self.rows:
            out.add_row(*row)
        return out

    def _records(self) -> Iterator[RenderableType]:
        """One block per row (like psql's expanded display): the full headers down the left."""
        yield Text(self.title, style="table.title")
        if not self.rows:
            yield Text("(none)", style="dim")
        for number, row in enumerate(self.rows, start=1):
            record = Table.grid(padding=(0, 2))
            record.add_column(style="bold", no_wrap=True)
            record.add_column(overflow="fold")
            for header, value in zip(self.columns, row, strict=False):
                record.add_row(header, value)
            yield Rule(f"{number} of {len(self.rows)}", align="left", style="dim")
            yield record
