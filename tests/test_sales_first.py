"""Sales work first on the lead's own workflow tasks: a handoff's activities are not held back
by the read-model write (a local activity keeps every command of its workflow task until it is
done), a new lead reads its rules once, and the read model still shows the handoff while the
rep's alert cannot be sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from nurture.standins.sendgrid_standin import SendFault, SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.read_model import HandoffRecord, LeadRecord
from tests.conftest import lead_id, running_engine, wait_for_email, wait_until


def _handoffs(session: Session, lead: str) -> list[HandoffRecord]:
    return list(session.exec(select(HandoffRecord).where(HandoffRecord.lead_id == lead)))


def _local_activity(event: HistoryEvent) -> str | None:
    """The activity type a local-activity marker records, else None."""
    marker = event.marker_recorded_event_attributes
    if not event.HasField("marker_recorded_event_attributes") or "data" not in marker.details:
        return None
    data = marker.details["data"].payloads[0].data.decode()
    for name in ("load_rules", "record_facts"):
        if f'"activity_type":"{name}"' in data:
            return name
    return None


async def _events(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


def _what_happened(events: list[HistoryEvent]) -> list[str]:
    """The lead's commands in order: activities by type, local activities, timers."""
    out = []
    for event in events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            out.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        elif (local := _local_activity(event)) is not None:
            out.append(f"local {local}")
        elif event.HasField("timer_started_event_attributes"):
            out.append("timer")
    return out


async def test_a_new_leads_handoff_goes_out_before_its_read_model_write(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id("demo-request")
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        handle = await engine.event(lead, "requested_call")
        await wait_for_email(standin, lead, "handoff")
        db = make_engine(engine.database_url)

        def handed_off_in_the_read_model() -> bool:
            with Session(db) as session:
                row = session.get(LeadRecord, lead)
                assigned = row is not None and row.stage == "assigned"
                return assigned and bool(_handoffs(session, lead))

        await wait_until(handed_off_in_the_read_model, what="the handoff in the read model")
        # The write commits before its workflow task completes and records the marker.
        deadline = asyncio.get_running_loop().time() + 15
        while "local record_facts" not in (done := _what_happened(await _events(handle))):
            assert asyncio.get_running_loop().time() < deadline, done
            await asyncio.sleep(0.05)

    alert = done.index("send_email")
    # Read once, then the rep is picked and alerted with nothing written in between...
    assert done[: done.index("assign_rep") + 1] == ["local load_rules", "assign_rep"]
    assert "local record_facts" not in done[:alert]
    # ...and the facts are written once the alert is out.
    assert "local record_facts" in done[alert:]


async def test_the_read_model_shows_the_handoff_while_the_alert_cannot_be_sent(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """SendGrid refuses the rep's alert for a while (retried for as long as it takes): the read
    model has the handoff within seconds anyway, and the alert goes out once, later."""
    lead = lead_id("demo-request")
    standin.set_fault_rule(
        lambda args: SendFault(status=503) if args.get("category") == "handoff" else None
    )
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        await engine.event(lead, "requested_call")
        db = make_engine(engine.database_url)

        def handoff_recorded() -> bool:
            with Session(db) as session:
                return bool(_handoffs(session, lead))

        await wait_until(handoff_recorded, timeout=15, what="the handoff in the read model")
        assert not standin.messages_with(lead_id=lead, category="handoff")
        standin.set_fault_rule(None)
        assert len(await wait_for_email(standin, lead, "handoff")) == 1
