"""``nurture lead add`` / ``nurture event``: JSON lines in, one signal-with-start per line.

A bad line is reported with its number and reason and kept in a rejects file; good lines are
applied all the same. Lines for one lead are sent in order; different leads go in parallel.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from temporalio.client import Client

from nurture.csv_import import rows_as_json
from nurture.leads import EDGE, LeadEvent, LeadProfile

IN_FLIGHT = 64


@dataclass
class Rejected:
    line: int
    reason: str
    raw: str


@dataclass
class IngestReport:
    read: int = 0
    applied: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    rejects_file: Path | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "applied": self.applied,
            "rejected": len(self.rejected),
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "errors": [{"line": r.line, "reason": r.reason} for r in self.rejected[:100]],
        }


def describe_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "line"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            msg = "required field is missing"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_line(
    raw: str, model: type[BaseModel], known_types: set[str] | None
) -> LeadEvent | LeadProfile:
    """Validate one input line; raise ValueError with a reason a person can act on."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if "_csv_error" in data:
        raise ValueError(str(data["_csv_error"]))
    try:
        item = model.model_validate(data, context=EDGE)  # the edge bounds, as over HTTP
    except ValidationError as exc:
        raise ValueError(describe_validation(exc)) from None
    if isinstance(item, LeadEvent):
        if known_types is not None and item.type not in known_types:
            raise ValueError(
                f"type: unknown event type {item.type!r}; scoring.yaml knows "
                f"{', '.join(sorted(known_types))}"
            )
        return item.with_identity()
    assert isinstance(item, LeadProfile)
    return item


def read_lines(source: str) -> tuple[Iterable[str], int | None, str]:
    """Lines of a file or of stdin (``-``), the count when known, and a label."""
    if source == "-":
        return sys.stdin, None, "stdin"
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    with path.open(encoding="utf-8") as handle:
        total = sum(1 for _ in handle)
    if path.suffix.lower() == ".csv":  # a CSV export of existing leads: one row per profile
        return rows_as_json(path.open(encoding="utf-8", newline="")), total, path.name
    return path.open(encoding="utf-8"), total, path.name


def rejects_path(source: str, explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    return Path("stdin.rejects.jsonl") if source == "-" else Path(f"{source}.rejects.jsonl")


async def ingest(
    client: Client,
    source: str,
    model: type[BaseModel],
    send: Callable[[Client, Any], Awaitable[object]],
    known_types: set[str] | None,
    rejects: Path,
    show_progress: bool,
) -> IngestReport:
    lines, total, label = read_lines(source)
    report = IngestReport()
    gate = asyncio.Semaphore(IN_FLIGHT)
    lead_locks: dict[str, asyncio.Lock] = {}
    tasks: set[asyncio.Task[None]] = set()
    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rejected]} rejected"),
        TimeRemainingColumn(),
        disable=not show_progress,
        transient=False,
    )

    async def deliver(number: int, raw: str, item: LeadEvent | LeadProfile, bar: Any) -> None:
        lock = lead_locks.setdefault(item.lead_id, asyncio.Lock())
        async with gate, lock:
            try:
                await send(client, item)
                report.applied += 1
            except Exception as exc:  # the line is kept, with why it did not reach its lead
                report.rejected.append(Rejected(number, f"not delivered: {exc}", raw))
        progress.update(bar, advance=1, rejected=len(report.rejected))

    with progress:
        bar = progress.add_task(label, total=total, rejected=0)
        for number, raw_line in enumerate(lines, start=1):
            raw = raw_line.rstrip("\n")
            if not raw.strip():
                progress.update(bar, advance=1)
                continue
            report.read += 1
            try:
                item = parse_line(raw, model, known_types)
            except ValueError as exc:
                report.rejected.append(Rejected(number, str(exc), raw))
                progress.update(bar, advance=1, rejected=len(report.rejected))
                continue
            task = asyncio.create_task(deliver(number, raw, item, bar))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if len(tasks) >= IN_FLIGHT * 4:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks:
            await asyncio.gather(*tasks)
    if report.rejected:
        report.rejected.sort(key=lambda r: r.line)
        with rejects.open("w", encoding="utf-8") as out:
            for r in report.rejected:
                out.write(json.dumps({"line": r.line, "reason": r.reason, "input": r.raw}) + "\n")
        report.rejects_file = rejects
    return report
