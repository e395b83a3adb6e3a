"""A query can bring a lead history events before their workflow task; the lead must decide
nothing on them (the history kept in ``tests/histories/unexplained/``, explained).

A query sent while a lead has no workflow task pending goes to a worker directly, with the
history as it is when a worker picks it up. When the worker is down or busy, a timer can fire
(or a signal or an activity result arrive) in between: the query's history then ends in those
events and the workflow task they scheduled, not yet started. The SDK's core (temporalio
1.35.0) runs them in the workflow at once, outside any workflow task and not as a replay, with
the clock of the last workflow task, then sends what the workflow did as the commands of that
next workflow task, for which it activates the workflow no more. A replay runs them in that
task, with its time. In ``life-1fa7b0d8`` (the random life, seed 3, a worker replaced while
its SLA timer was about to fire, then queried at once) the first run found the SLA not yet
due and slept 3.787537 s again (event 86); a replay finds it overdue and schedules the miss's
alert: TMPRL1100, for ever.

The Replayer reproduces the query's view exactly: a history that ends past its last workflow
task is run the same way (the last events outside a task, with the last task's time). The
lead must refuse to decide on them (it fails that activation; the query is asked again and the
next workflow task replays the events with their time)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from nurture.contract.names import AHEAD_OF_WORKFLOW_TASK
from tests.recorded_rules import only_recorded_rules
from workflows.lead import LeadWorkflow

HISTORIES = Path(__file__).parent / "histories"
SHIPPED = sorted(HISTORIES.glob("*.json"))
UNEXPLAINED = HISTORIES / "unexplained" / "life-1fa7b0d8.json"
WAKE_UPS = {
    "timer": "EVENT_TYPE_TIMER_FIRED",
    "activity result": "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
    "signal": "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
}


def _events(path: Path) -> list[dict[str, object]]:
    events: list[dict[str, object]] = json.loads(path.read_text())["events"]
    return events


def cut_history(path: Path, last_event: int) -> WorkflowHistory:
    """The history of ``path`` up to and including event ``last_event``."""
    data = json.loads(path.read_text())
    data["events"] = [e for e in data["events"] if int(e["eventId"]) <= last_event]
    return WorkflowHistory.from_json(f"{path.stem}-to-{last_event}", json.dumps(data))


def _first_wake_up(path: Path, kind: str) -> tuple[int, int] | None:
    """The workflow task a wake-up of ``kind`` scheduled after the lead's first workflow task:
    its scheduled and started event ids."""
    events = _events(path)
    types = [str(e["eventType"]) for e in events]
    ids = [int(str(e["eventId"])) for e in events]
    first_done = types.index("EVENT_TYPE_WORKFLOW_TASK_COMPLETED")
    for i in range(first_done, len(events)):
        if types[i] == WAKE_UPS[kind]:
            scheduled = types.index("EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", i)
            started = types.index("EVENT_TYPE_WORKFLOW_TASK_STARTED", scheduled)
            return ids[scheduled], ids[started]
    return None


async def _refusals(history: WorkflowHistory, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Replay ``history``; the lead's refusals to decide ahead of a workflow task."""
    caplog.clear()
    with caplog.at_level(logging.WARNING), only_recorded_rules():
        replayer = Replayer(workflows=[LeadWorkflow], data_converter=pydantic_data_converter)
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
    return [
        str(record.exc_info[1])
        for record in caplog.records
        if record.exc_info and AHEAD_OF_WORKFLOW_TASK in str(record.exc_info[1])
    ]


async def test_the_unexplained_lead_refuses_what_its_query_brought_ahead_of_the_sla_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Events 82-83 (the SLA timer fired, a workflow task scheduled) reached the replacement
    worker with a query, before task 84: deciding on them then read 13:44:25.07, the time of
    task 79, and started event 86's timer. Refused, the lead decides at task 84, as a replay
    does."""
    refusals = await _refusals(cut_history(UNEXPLAINED, 83), caplog)
    assert len(refusals) == 1
    assert "its clock still reads" in refusals[0] and "13:44:25.072996" in refusals[0]
    assert await _refusals(cut_history(UNEXPLAINED, 84), caplog) == []  # task 84 itself: decided


CASES = [
    (path, kind, wake_up)
    for path in SHIPPED
    for kind in WAKE_UPS
    if (wake_up := _first_wake_up(path, kind)) is not None
]


@pytest.mark.parametrize(
    ("path", "kind", "wake_up"), CASES, ids=[f"{p.stem}-{k}" for p, k, _ in CASES]
)
async def test_a_lead_decides_nothing_on_a_wake_up_ahead_of_its_workflow_task(
    path: Path, kind: str, wake_up: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever woke it (its timer, an activity's result, a signal) and whatever version it
    runs: ahead of the workflow task, refused; in the workflow task, decided."""
    scheduled, started = wake_up
    assert await _refusals(cut_history(path, scheduled), caplog), (
        f"{kind} at {scheduled} decided on"
    )
    assert not await _refusals(cut_history(path, started), caplog), f"task {started} refused"
