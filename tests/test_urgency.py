"""What sales waits for goes first: a lead's alert, escalation and routing activities carry
Temporal's highest priority key, its nurture touches a low one, so a backlog of due touches
never stands between a sales-ready lead and its rep (``nurture/core/urgency.py``;
``bench/overload.py`` measures it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from nurture.contract.messages import (
    ASSIGN_REP,
    SEND_EMAIL,
    AssignRequest,
    EmailCategory,
    EmailRequest,
    TaskRequest,
)
from nurture.core import urgency
from nurture.domain.rules import Sender
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, running_engine


def email(category: EmailCategory) -> EmailRequest:
    return EmailRequest(
        key="k",
        lead_id="l",
        category=category,
        to_email="ada@corp.example",
        sender=Sender(email="marketing@corp.example"),
        template="t.html",
        subject="s",
    )


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("handoff", urgency.SALES),
        ("escalation", urgency.SALES),
        ("reassigned", urgency.SALES),
        ("activity", None),
        ("touch", urgency.NURTURE),
    ],
)
def test_every_email_category_has_its_urgency(
    category: EmailCategory, expected: int | None
) -> None:
    assert urgency.priority_key(email(category)) == expected


def test_routing_is_urgent_and_cadence_tasks_are_not() -> None:
    routing = AssignRequest(key="k", lead_id="l", pool="p", candidates=["eli"], strategy="rr")
    task = TaskRequest(
        key="k",
        lead_id="l",
        channel="call",
        cadence="c",
        step="s",
        title="Call",
        due_at=datetime(2026, 12, 5, tzinfo=UTC),
    )
    assert urgency.priority_key(routing) == urgency.SALES
    assert urgency.priority_key(task) == urgency.NURTURE
    assert urgency.priority_key(object()) is None  # records, task closures, CRM writes
    assert urgency.SALES < 3 < urgency.NURTURE  # 3: Temporal's key for a task given none


async def test_the_alert_and_routing_are_scheduled_ahead_of_touches(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="ada@corp.example", first_name="Ada")
        await time_skipping_env.sleep(timedelta(weeks=3))
        await engine.request_call(lead)
        history = await handle.fetch_history()

    keys: dict[str, list[int]] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            keys.setdefault(scheduled.activity_type.name, []).append(
                scheduled.priority.priority_key
            )
    touches = len(standin.messages_with(lead_id=lead, category="touch"))
    alerts = len(standin.messages_with(lead_id=lead, category="handoff"))
    assert touches >= 2 and alerts == 1
    assert sorted(keys[SEND_EMAIL]) == [urgency.SALES] * alerts + [urgency.NURTURE] * touches
    assert keys[ASSIGN_REP] == [urgency.SALES]
