"""Replaying a recorded history asks for the same things with the same contents as when its
trace was recorded: email and task idempotency keys, read-model facts, their keys and versions,
search-attribute values, the state carried across continue-as-new and the state at the end.

Replay itself (``test_replay.py``) only checks the kind and order of commands; this catches a
refactoring that keeps the commands but changes what is in them (a new key for an email already
sent is a second email to a running lead). Record again with ``python -m tests.replay_trace
--write`` only for a change meant to alter what running leads send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.replay_trace import HISTORIES, trace, trace_path

TRACED = sorted(p for p in HISTORIES.glob("*.json"))


def test_every_history_has_a_recorded_trace() -> None:
    missing = [p.name for p in TRACED if not trace_path(p).exists()]
    assert TRACED and not missing, f"no trace for {missing}: python -m tests.replay_trace --write"


@pytest.mark.parametrize("path", TRACED, ids=[p.stem for p in TRACED])
async def test_replay_asks_for_what_it_asked_for_when_recorded(path: Path) -> None:
    expected = json.loads(trace_path(path).read_text())
    # Through JSON as when recorded (tuples become lists).
    actual = json.loads(json.dumps(await trace(path)))
    for number, (was, now) in enumerate(zip(expected, actual, strict=False)):
        assert now == was, f"{path.name}: command {number} differs"
        # Key order too (a template context's, a CRM record's fields): dicts ignore it.
        assert json.dumps(now) == json.dumps(was), f"{path.name}: command {number} reordered"
    assert len(actual) == len(expected), f"{path.name}: {len(actual)} commands, not {len(expected)}"
