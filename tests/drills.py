"""What the fault drills share: rules made for a drill, a database that goes away, and what
a lead's history says about its read-model writes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from temporalio.client import WorkflowHistory

from nurture.contract.ledger import RECORD_FACTS
from tests.conftest import POSTGRES_ADMIN_URL, TEST_RULES


def drill_rules(
    tmp_path: Path, touches: Sequence[tuple[str, str]], activity_timeout: str | None = None
) -> Path:
    """The test rules with one cadence of email touches (name, delay), a one-touch recycle
    cadence and an SLA far beyond any drill (no escalations); with ``activity_timeout``, that
    timeout in engine.yaml (a lost answer is retried soon)."""
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    cadences = yaml.safe_load((config / "cadences.yaml").read_text())

    def touch(name: str, delay: str) -> dict[str, str]:
        return {"name": name, "delay": delay, "template": "t/touch.html", "subject": name}

    cadences["cadences"] = [
        {"id": "drill", "name": "Drill", "steps": [touch(n, d) for n, d in touches]},
        {"id": "recycle", "name": "Recycle", "recycle": True, "steps": [touch("back", "1d")]},
    ]
    (config / "cadences.yaml").write_text(yaml.safe_dump(cadences))
    routing = yaml.safe_load((config / "routing.yaml").read_text())
    routing["sla"]["contact_within"] = "2000h"
    (config / "routing.yaml").write_text(yaml.safe_dump(routing))
    if activity_timeout is not None:
        (config / "engine.yaml").write_text(
            f"activity_timeout: {activity_timeout}\nmax_events_per_run: 400\n"
        )
    return config


def set_database_up(url: str, up: bool) -> None:
    """Refuse (and cut) or allow every connection to the drill's database."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(up).lower()}'))
            if not up:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
    finally:
        admin.dispose()


def read_model_writes(history: WorkflowHistory) -> list[dict[str, Any]]:
    """What each read-model write's local-activity marker says: its ``attempt``, its
    ``backoff`` before the next attempt when it failed (None when it succeeded), and its
    ``original_schedule_time``, the same for every attempt of one write."""
    writes = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_local_activity":
            data = json.loads(marker.details["data"].payloads[0].data)
            if data["activity_type"] == RECORD_FACTS:
                writes.append(data)
    return writes


def retries_in_task(writes: list[dict[str, Any]]) -> int:
    """The most attempts one write made inside a workflow task after its first (a marker is
    recorded only when the write succeeds or waits for a timer, so attempts it skips were
    made in the task)."""
    last_attempt: dict[str, int] = {}
    most = 0
    for write in writes:
        write_id = json.dumps(write["original_schedule_time"])
        most = max(most, write["attempt"] - last_attempt.get(write_id, 0) - 1)
        last_attempt[write_id] = write["attempt"]
    return most
