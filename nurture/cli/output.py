"""Shared CLI plumbing: run async commands, print JSON or a table, exit with a real status."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from nurture.process import exit_now

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
console = Console()
errors = Console(stderr=True)


def run(coro: Coroutine[Any, Any, int], interrupted_status: int = 130) -> None:
    """Run a command's coroutine and exit with its status, skipping interpreter teardown
    (see :mod:`nurture.process`). Ctrl-C exits with ``interrupted_status``."""
    try:
        status = asyncio.run(coro)
    except KeyboardInterrupt:
        status = interrupted_status
    except RPCError as exc:  # the server went away or is not ready: say so, no traceback
        status = fail(
            f"Temporal answered {exc.status.name}: {exc.message}. Is the engine running and "
            "ready ('nurture up', TEMPORAL_ADDRESS)? Commands are safe to run again: events and "
            "profiles already sent are not applied twice when they carry 'at' or 'event_id'.",
            2,
        )
    exit_now(status)


async def connect_client() -> Client:
    from nurture.sales import LeadActionError
    from nurture.temporal import TemporalSettings, connect

    settings = TemporalSettings.from_env()
    try:
        return await connect(settings)
    except (RuntimeError, ValueError) as exc:  # unreachable, or its TLS settings incomplete
        raise LeadActionError(
            f"cannot reach Temporal at {settings.address} ({exc}); start the engine with "
            "'nurture up' or set TEMPORAL_ADDRESS"
        ) from exc


def fail(message: str, status: int = 1) -> int:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return status


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    return out
