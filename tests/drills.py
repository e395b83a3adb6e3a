"""What the fault drills share: rules made for a drill."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from tests.conftest import TEST_RULES


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
