"""``nurture lead export LEAD``: everything we hold on a lead, as one JSON document (the same
as ``GET /api/leads/{id}/export``). With ``--json`` the document goes to stdout; without, it is
written to a file only this user can read, and the sections are summed up."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from nurture.cli.output import JsonOpt, connect_client, console, fail, print_json, run, table
from nurture.client.lead_holdings import export_lead
from nurture.client.sales import LeadActionError, UnknownLeadError
from nurture.privacy.export import summary
from nurture.store.db import PRIVATE_DIR_MODE, database_url_from_env, make_engine

PRIVATE_FILE_MODE = 0o600
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="where the document goes (default lead-<id>-export.json here)"),
]


def lead_export(lead_id: str, as_json: JsonOpt = False, out: OutOpt = None) -> None:
    """Everything held on a lead (profile, state, score and why, events, stage moves,
    hand-offs, rep turns, touches with the emails as sent, tasks, suppression entries, CRM
    pushes, webhook events, …) as one JSON document: printed with --json, else written to a
    file (0600) and summed up. Exit 1: no such lead (or no lead can have that id); 2: nothing
    done (Temporal unavailable, the file not writable)."""

    async def main() -> int:
        try:
            client = await connect_client()
            document = await export_lead(client, make_engine(database_url_from_env()), lead_id)
        except LeadActionError as exc:
            return fail(str(exc), 1 if isinstance(exc, UnknownLeadError) else 2)
        if as_json:
            print_json(document)
            return 0
        path = out or Path(f"lead-{lead_id}-export.json")
        try:
            write_private(path, document)
        except OSError as exc:
            return fail(f"cannot write {path}: {exc.strerror or exc}", 2)
        _print_summary(document, path)
        return 0

    run(main())


def write_private(path: Path, document: dict[str, Any]) -> None:
    """The document in a file only this user can read (it is all of a person's data)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)  # an existing file keeps its mode otherwise
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2, default=str) + "\n")


def _print_summary(document: dict[str, Any], path: Path) -> None:
    console.print(
        table(
            f"Export of lead {document['lead_id']} (schema {document['schema_version']}, "
            f"made {document['generated_at']})",
            ["section", "items"],
            [[name, count] for name, count in summary(document)],
        )
    )
    for gap in document["missing"]:
        console.print(f"missing: {gap}", highlight=False, soft_wrap=True)
    console.print(f"The whole document: {path}", highlight=False, soft_wrap=True)
