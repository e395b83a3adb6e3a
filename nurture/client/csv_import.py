"""Existing leads from a CSV export (a CRM, a spreadsheet) as profile records.

The header names profile fields (``email``, ``first_name``, ``company_size``…, or
``custom.<name>`` for your own, ``consent.<field>`` for a consent record: ``consent.source``,
``consent.version``, ``consent.text``, ``consent.at``, ``consent.ip``); an empty cell means
"not sent", so it never blanks a field a lead already has. Each row becomes one JSON object,
validated like any other profile (a row that cannot even be read as CSV, e.g. a cell over the
csv module's 131,072 characters, is reported as that row's error and the rest are read on).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from nurture.domain.leads import PROFILE_FIELDS, ConsentGiven

CONSENT_COLUMNS = tuple(f"consent.{name}" for name in ConsentGiven.model_fields)


class CsvHeaderError(ValueError):
    """The header cannot be mapped to profile fields."""


def check_header(header: list[str]) -> None:
    known = {"lead_id", *PROFILE_FIELDS, *CONSENT_COLUMNS}
    unknown = [h for h in header if h not in known and not h.startswith("custom.")]
    if "lead_id" not in header:
        raise CsvHeaderError("the CSV header needs a 'lead_id' column")
    if unknown:
        raise CsvHeaderError(
            f"unknown columns {unknown}: use lead_id, {', '.join(PROFILE_FIELDS)}, "
            f"{', '.join(CONSENT_COLUMNS)} or custom.<name>"
        )


def rows_as_json(lines: Iterable[str]) -> Iterator[str]:
    """One JSON object per data row; the header row yields an empty line, so numbering
    (1 = header) matches the file for error messages."""
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    check_header(header)
    yield ""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield json.dumps({"_csv_error": f"unreadable row: {exc}"})
            continue
        if not any(cell.strip() for cell in row):
            yield ""
            continue
        if len(row) != len(header):
            yield json.dumps({"_csv_error": f"{len(row)} cells, the header has {len(header)}"})
            continue
        record: dict[str, object] = {}
        nested: dict[str, dict[str, str]] = {"custom": {}, "consent": {}}
        for name, cell in zip(header, row, strict=True):
            value = cell.strip()
            if not value:
                continue
            group, _, field = name.partition(".")
            if field and group in nested:
                nested[group][field] = value
            else:
                record[name] = value
        record |= {group: fields for group, fields in nested.items() if fields}
        yield json.dumps(record)
