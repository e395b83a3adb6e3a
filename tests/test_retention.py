"""Issue 15, retention: leads that went cold are erased by a Temporal Schedule every worker
keeps in line with ``engine.yaml``; leads still in play are not touched."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session
from temporalio.client import ScheduleActionStartWorkflow, ScheduleIntervalSpec
from temporalio.testing import WorkflowEnvironment

from nurture.client.retention import keep_retention_schedule
from nurture.contract.retention import COLD_STAGES, RETENTION_SCHEDULE, RetentionRequest
from nurture.domain.rules import EngineSettings
from nurture.privacy.erasure import lead_ref, was_erased
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.cold_leads import cold_leads
from nurture.store.db import make_engine
from nurture.store.erasure_receipts import receipts_for
from nurture.store.read_model import LeadEventRecord, LeadRecord
from tests.conftest import lead_id, running_engine, wait_for_email, wait_until

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=365)
LONG_AGO = NOW - timedelta(days=800)


def test_a_cold_lead_is_one_in_a_cold_stage_with_nothing_since_the_cutoff(
    database_url: str,
) -> None:
    engine = make_engine(database_url)

    def lead(lead: str, stage: str, since: datetime) -> LeadRecord:
        return LeadRecord(
            lead_id=lead,
            workflow_id=f"lead-{lead}",
            stage=stage,
            stage_since=since,
            created_at=LONG_AGO,
            score=0,
            grade="D",
            version=1,
            updated_at=NOW,  # rewritten lately (score decay): not activity
        )

    def event(lead: str, at: datetime) -> LeadEventRecord:
        return LeadEventRecord(
            key=f"{lead}:{at:%s}", lead_id=lead, at=at, received_at=at, type="page_view"
        )

    with Session(engine) as session:
        session.add_all(
            [
                lead("quiet", "nurturing", LONG_AGO),
                lead("lost-long-ago", "lost", LONG_AGO),
                event("lost-long-ago", LONG_AGO),
                lead("visited-lately", "nurturing", LONG_AGO),
                event("visited-lately", NOW - timedelta(days=3)),
                lead("moved-lately", "recycled", NOW - timedelta(days=3)),
                lead("with-sales", "assigned", LONG_AGO),
                lead("customer", "won", LONG_AGO),
                lead("erased-0123abcd", "nurturing", LONG_AGO),
            ]
        )
        session.commit()

    assert cold_leads(engine, CUTOFF, 10, COLD_STAGES) == ["lost-long-ago", "quiet"]
    assert cold_leads(engine, CUTOFF, 1, COLD_STAGES) == ["lost-long-ago"]
    assert cold_leads(engine, LONG_AGO, 10, COLD_STAGES) == []
    engine.dispose()


async def test_the_schedule_erases_cold_leads_and_follows_the_setting(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    cold, hot = lead_id("cold"), lead_id("hot")
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        db = make_engine(engine.database_url)
        await engine.profile(lead_id=cold, email=f"{cold}@x.example", company_size=900)
        await wait_for_email(standin, cold, "touch")
        await engine.profile(lead_id=hot, email=f"{hot}@x.example", company_size=900)
        await engine.request_call(hot)  # with sales: never cold, however quiet
        await wait_until(lambda: _stage(db, cold) == "nurturing" and _stage(db, hot) is not None)

        setting = EngineSettings(erase_cold_leads_after=timedelta(seconds=1))
        client, queue = dev_env.client, engine.task_queue
        assert await keep_retention_schedule(client, setting, queue) == "created"
        assert await keep_retention_schedule(client, setting, queue) == "updated"  # a 2nd worker
        schedule = client.get_schedule_handle(RETENTION_SCHEDULE)
        described = await schedule.describe()
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(days=1))]
        (request,) = await client.data_converter.decode(action.args, [RetentionRequest])
        assert request.cold_after == timedelta(seconds=1)

        await asyncio.sleep(1.5)  # the cold lead's last stage change is now past the cutoff
        await schedule.trigger()
        await wait_until(lambda: was_erased(db, cold), timeout=30, what="the cold lead erased")
        (receipt,) = receipts_for(db, lead_ref(db, cold))
        assert receipt.requested_by == "retention" and "retention" in (receipt.reason or "")
        assert not was_erased(db, hot) and _stage(db, hot) == "assigned"
        with Session(db) as session:
            assert session.get(LeadRecord, cold) is None  # its row now carries a pseudonym

        assert await keep_retention_schedule(client, EngineSettings(), queue) == "removed"
        assert await keep_retention_schedule(client, EngineSettings(), queue) == "none"


def _stage(engine: object, lead: str) -> str | None:
    with Session(engine) as session:  # type: ignore[arg-type]
        row = session.get(LeadRecord, lead)
        return row.stage if row is not None else None
