"""The rules versions recorded histories name: since the ``rules-by-version`` patch a history
records only the version of the rules its lead read, so the rules are kept beside the histories
(``tests/histories/rules/<version>.json``), and a replay reads them there as a worker reads them
from its engine database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio.client import WorkflowHistory

from nurture.contract import shared_rules
from nurture.contract.messages import LOAD_RULES
from nurture.domain.rules import Rules

RULES = Path(__file__).parent / "histories" / "rules"
PLAIN = b"json/plain"


def versions_named(history: WorkflowHistory) -> set[str]:
    """The rules versions the history's rules reads answered with (not the rules)."""
    named = set()
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != "core_local_activity" or "result" not in marker.details:
            continue
        data = json.loads(marker.details["data"].payloads[0].data)
        result = marker.details["result"].payloads[0]
        if data.get("activity_type") != LOAD_RULES or result.metadata["encoding"] != PLAIN:
            continue  # another local activity, or None: the lead's rules were the newest
        answer = json.loads(result.data)
        if isinstance(answer, str):
            named.add(answer)
    return named


def keep_rules_named(history: WorkflowHistory) -> list[Path]:
    """Write the rules of every version ``history`` names, from this process's shelf."""
    RULES.mkdir(exist_ok=True)
    written = []
    for version in sorted(versions_named(history)):
        path = RULES / f"{version}.json"
        path.write_text(shared_rules.SHELF.rules(version).model_dump_json(indent=1) + "\n")
        written.append(path)
    return written


def recorded_rules(version: str) -> Rules | None:
    path = RULES / f"{version}.json"
    return Rules.model_validate_json(path.read_text()) if path.is_file() else None


@contextmanager
def only_recorded_rules() -> Iterator[shared_rules.RulesShelf]:
    """This process's shelf replaced by an empty one that reads only the recorded rules, as a
    worker that never loaded those versions reads them from its database."""
    shelf, before = shared_rules.RulesShelf(), shared_rules.SHELF
    shelf.read_from(recorded_rules)
    shared_rules.SHELF = shelf
    try:
        yield shelf
    finally:
        shared_rules.SHELF = before
