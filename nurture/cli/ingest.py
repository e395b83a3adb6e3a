"""``nurture lead add`` / ``nurture event``: JSON lines (or a CSV of profiles) in, one
signal-with-start per record.

A bad record is reported with its line number and reason and kept in a rejects file of the
input's format; good records are applied all the same. Records for one lead are sent in order;
different leads go in parallel.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nurture.client.csv_import import rows_as_json
from nurture.client.ingest import IN_FLIGHT, LeadDelivery, unknown_event_type
from nurture.domain.leads import EDGE, LeadEvent, LeadProfile


@dataclass
class Rejected:
    line: int
    reason: str
    raw: str
    cells: list[str] | None = None  # a CSV row as read

    @classmethod
    def of(cls, record: Record, reason: str) -> Rejected:
        return cls(record.line, reason, record.text, record.cells)


@dataclass
class IngestReport:
    read: int = 0  # records (JSON lines, or CSV rows without the header)
    applied: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    """Applied records the operator should know about (line, what), e.g. a suppressed address."""
    rejects_file: Path | None = None
    unit: str = "lines"

    def as_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "applied": self.applied,
            "rejected": len(self.rejected),
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "errors": [{"line": r.line, "reason": r.reason} for r in self.rejected[:100]],
            "notes": [{"line": line, "note": note} for line, note in sorted(self.notes)[:100]],
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
        if unknown := unknown_event_type(item, known_types):
            raise ValueError(f"type: {unknown}")
        return item.with_identity()
    assert isinstance(item, LeadProfile)
    return item


@dataclass(frozen=True)
class Record:
    """One record of the input: where it starts in the file (1 = first line), the JSON that
    is validated, and for a CSV the row's cells (a rejected row is written back as a row)."""

    line: int
    text: str
    cells: list[str] | None = None


@dataclass(frozen=True)
class Source:
    label: str
    records: Iterable[Record]
    #: Records in the input (blank lines and a CSV's header not counted), when known: the
    #: progress bar counts what the summary counts.
    total: int | None
    #: A CSV's header (rejects are then a CSV of the same columns plus ``error``).
    csv_header: list[str] | None = None

    @property
    def unit(self) -> str:
        return "rows" if self.csv_header is not None else "lines"


#: The column a CSV of rejected rows adds; dropped when that file is sent again.
ERROR_COLUMN = "error"


def read_source(source: str) -> Source:
    """The records of a JSON-lines file, a ``.csv`` export, or stdin (``-``, JSON lines)."""
    if source == "-":
        return Source("stdin", _json_records(sys.stdin), None)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if path.suffix.lower() == ".csv":  # a CSV export of existing leads: one row per profile
        return _csv_source(path)
    with path.open(encoding="utf-8") as handle:
        total = sum(1 for line in handle if line.strip())
    return Source(path.name, _json_records(path.open(encoding="utf-8")), total)


def _json_records(lines: Iterable[str]) -> Iterator[Record]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield Record(number, line.rstrip("\n"))


def _csv_source(path: Path) -> Source:
    with path.open(encoding="utf-8", newline="") as handle:
        total = max(sum(1 for _ in _csv_rows(handle)) - 1, 0)  # the header is no record
    with path.open(encoding="utf-8", newline="") as handle:
        first = next(_csv_rows(handle), None)
    header = first[1] if first and first[1] is not None else []
    dropped = {i for i, name in enumerate(header) if name.strip() == ERROR_COLUMN}
    kept_header = [name for i, name in enumerate(header) if i not in dropped]
    return Source(path.name, _csv_records(path, dropped), total, kept_header)


def _csv_rows(handle: Iterable[str]) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line, cells, problem) of each non-blank row; a row the CSV reader cannot read
    (e.g. a field over its size limit) comes as a problem, and reading goes on after it."""
    reader = csv.reader(handle)
    read_up_to = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield read_up_to + 1, None, f"not valid CSV: {exc}"
        else:
            if any(cell.strip() for cell in cells):
                yield read_up_to + 1, cells, None
        read_up_to = reader.line_num


def _csv_records(path: Path, dropped: set[int]) -> Iterator[Record]:
    """Each row as :func:`nurture.client.csv_import.rows_as_json` maps it, with its line and cells.

    Rows are handed to ``rows_as_json`` one at a time (re-written without the ``error`` column
    of a rejects file), so each JSON it yields is paired with the row it came from."""
    pending: deque[tuple[int, list[str]]] = deque()
    problems: deque[Record] = deque()

    def lines() -> Iterator[str]:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, cells, problem in _csv_rows(handle):
                if cells is None:
                    problems.append(Record(number, json.dumps({"_csv_error": problem}), []))
                    continue
                kept = [cell for i, cell in enumerate(cells) if i not in dropped]
                pending.append((number, kept))
                yield _csv_line(kept)

    for text in rows_as_json(lines()):
        while problems:
            yield problems.popleft()
        number, cells = pending.popleft()
        if text:  # the header maps to an empty line
            yield Record(number, text, cells)
    yield from problems


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def rejects_path(source: str, explicit: str | None) -> Path:
    """Where rejected records go, in the input's format: ``leads.rejects.csv`` beside a CSV,
    ``events.jsonl.rejects.jsonl`` beside JSON lines."""
    if explicit:
        return Path(explicit)
    if source == "-":
        return Path("stdin.rejects.jsonl")
    path = Path(source)
    if path.suffix.lower() == ".csv":
        return path.with_name(f"{path.stem}.rejects.csv")
    return Path(f"{source}.rejects.jsonl")


def write_rejects(path: Path, rejected: list[Rejected], csv_header: list[str] | None) -> None:
    """JSON lines (line, reason, input), or for a CSV the rejected rows with an ``error``
    column: fix the rows and send the file again (the ``error`` column is then ignored)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        if csv_header is None:
            for r in rejected:
                out.write(json.dumps({"line": r.line, "reason": r.reason, "input": r.raw}) + "\n")
            return
        writer = csv.writer(out)
        writer.writerow([*csv_header, ERROR_COLUMN])
        for r in rejected:
            cells = r.cells or []
            padding = [""] * (len(csv_header) - len(cells))
            writer.writerow([*cells, *padding, f"line {r.line}: {r.reason}"])


async def ingest(
    delivery: LeadDelivery,
    source: str,
    model: type[BaseModel],
    known_types: set[str] | None,
    rejects: Path,
    show_progress: bool,
) -> IngestReport:
    input_ = read_source(source)
    report = IngestReport(unit=input_.unit)
    tasks: set[asyncio.Task[None]] = set()
    progress = Progress(
        TextColumn(input_.label.replace("{", "{{").replace("}", "}}"), style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{input_.unit} " + "{task.fields[rejected]} rejected"),
        TimeRemainingColumn(),
        disable=not show_progress,
        transient=False,
    )

    async def deliver(record: Record, item: LeadEvent | LeadProfile, bar: Any) -> None:
        delivered = await delivery.deliver(item)
        if delivered.status == "accepted":
            report.applied += 1
            if delivered.note:
                report.notes.append((record.line, delivered.note))
        else:  # the record is kept, with why it did not reach its lead
            report.rejected.append(Rejected.of(record, delivered.reason or delivered.status))
        progress.update(bar, advance=1, rejected=len(report.rejected))

    with progress:
        bar = progress.add_task(input_.label, total=input_.total, rejected=0)
        for record in input_.records:
            report.read += 1
            try:
                item = parse_line(record.text, model, known_types)
            except ValueError as exc:
                report.rejected.append(Rejected.of(record, str(exc)))
                progress.update(bar, advance=1, rejected=len(report.rejected))
                continue
            task = asyncio.create_task(deliver(record, item, bar))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if len(tasks) >= IN_FLIGHT * 4:  # reading stays a little ahead of sending
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks:
            await asyncio.gather(*tasks)
    if report.rejected:
        report.rejected.sort(key=lambda r: r.line)
        write_rejects(rejects, report.rejected, input_.csv_header)
        report.rejects_file = rejects
    return report
