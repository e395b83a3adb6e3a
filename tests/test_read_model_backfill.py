"""A lead from before the read model (its state carried into a new run, nothing reported yet)
reports what it is in the middle of on its first run that reports: the reports count it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select
from temporalio.testing import WorkflowEnvironment

from nurture.contract.messages import (
    Assignment,
    Handoff,
    LeadInput,
    LeadState,
    Story,
)
from nurture.domain.leads import LeadProfile, workflow_id_for
from nurture.domain.routing import RouteDecision
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.read_model import HandoffRecord, LeadRecord, SalesAssignment
from tests.conftest import lead_id, running_engine, wait_until
from workflows.lead import LeadWorkflow


async def test_a_lead_from_before_the_read_model_reports_its_handoff_and_sla_turns(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id("old")
    now = datetime.now(UTC)
    handed = now - timedelta(hours=1)
    old = LeadState(
        lead_id=lead,
        profile=LeadProfile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA"),
        stage="assigned",
        owner="bob",
        handoffs=1,
        handoff=Handoff(
            number=1,
            at=handed,
            route=RouteDecision(rule="emea", pool=["alice", "bob"], strategy="round_robin"),
            story=Story(
                campaign="webinar",
                qualified_by="score 104 reached threshold 100 on page_view",
                score=104,
                grade="B",
                fit={},
                top_behaviours=[],
                recent=[],
            ),
            sla_due_at=now + timedelta(hours=3),
            missed_by=["alice"],
        ),
        assignments=[
            Assignment(rep="alice", at=handed, reason="handoff"),
            Assignment(rep="bob", at=handed + timedelta(minutes=30), reason="reassigned"),
        ],
        created_at=now - timedelta(days=3),
        runs=4,
    )
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        await dev_env.client.start_workflow(
            LeadWorkflow.run,
            LeadInput(lead_id=lead, state=old),
            id=workflow_id_for(lead),
            task_queue=engine.task_queue,
        )
        db = make_engine(engine.database_url)

        def reported() -> bool:
            with Session(db) as session:
                return (
                    session.get(LeadRecord, lead) is not None
                    and len(session.exec(select(SalesAssignment)).all()) == 2
                    and session.exec(select(HandoffRecord)).first() is not None
                )

        await wait_until(reported, what="the old lead's backfill")
        with Session(db) as session:
            handoff = session.exec(select(HandoffRecord)).one()
            turns = session.exec(select(SalesAssignment).order_by(col(SalesAssignment.at))).all()
            row = session.get(LeadRecord, lead)
        await dev_env.client.get_workflow_handle(workflow_id_for(lead)).terminate("test over")
    assert (handoff.status, handoff.score, handoff.campaign, handoff.rep) == (
        "open",
        104,
        "webinar",
        "bob",
    )
    assert [t.rep for t in turns] == ["alice", "bob"]
    assert row is not None and (row.stage, row.owner, row.handoffs) == ("assigned", "bob", 1)
