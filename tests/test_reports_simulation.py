"""A seeded simulation through real lead workflows, then the reports, on SQLite and on
PostgreSQL: every figure is checked against counts the test computes itself from what the
workflows say happened (their state, read through Temporal) and what the simulated reps did,
never from the report code."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine as SqlEngine
from sqlmodel import col
from temporalio.testing import WorkflowEnvironment

from nurture.cli.simulate import simulate
from nurture.client.sales import LeadActionError, act, read_state
from nurture.config.config_loader import load_rules
from nurture.contract.messages import LeadState, RepAction
from nurture.domain.leads import workflow_id_for
from nurture.reports import ReportQuery, run_report
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.campaigns import record_cost
from nurture.store.db import StageTransition, make_engine
from nurture.store.read_model import (
    DealOutcome,
    HandoffRecord,
    LeadEventRecord,
    LeadRecord,
    SalesAssignment,
    TouchRecord,
)
from tests.conftest import TEST_RULES, TEST_TEMPLATES, running_engine, wait_until

TIME_SCALE = 3600.0  # the 4 h SLA lapses in 4 s: the absent rep's leads escalate
LEADS = 80
SEED = 39
"""The absent rep is dana (AMER): her leads miss the SLA and are reassigned. The seed also
gives hot leads that the reps will close won, and some they will reject, in EMEA and APAC,
whose reps are all present. Under seed 3 every lead destined to be won was in AMER, so a win
depended on chen getting it, or on dana's SLA lapsing before the reps played. That is a race,
and the report test once ended with no won deal."""
RELEVANT = frozenset({"accepted", "contacted", "rejected"})


async def _settle_sales(client: Any, ids: list[str]) -> list[LeadState]:
    """Every lead still waiting for a rep is accepted by its owner, so no SLA clock runs and
    the figures stop moving; returns the final states."""
    for _ in range(10):
        states = await asyncio.gather(*(read_state(client, i) for i in ids))
        waiting = [s for s in states if s.stage == "assigned" and s.owner]
        if not waiting:
            return list(states)
        for s in waiting:
            # Reassigned meanwhile? The next round accepts it for the new owner.
            with contextlib.suppress(LeadActionError):
                await act(client, s.lead_id, "accept", RepAction(rep=s.owner or ""))
    raise AssertionError("leads kept escalating")


def _count(db: SqlEngine, *columns: Any) -> Any:
    with db.connect() as conn:
        return conn.execute(select(*columns)).one()


def _read_model_caught_up(db: SqlEngine, states: list[LeadState]) -> bool:
    events, leads, handoffs, outcomes = _count(
        db,
        select(func.count()).select_from(LeadEventRecord).scalar_subquery(),
        select(func.count()).select_from(LeadRecord).scalar_subquery(),
        select(func.count()).select_from(HandoffRecord).scalar_subquery(),
        select(func.count()).select_from(DealOutcome).scalar_subquery(),
    )
    with db.connect() as conn:
        rows = conn.execute(select(col(LeadRecord.lead_id), col(LeadRecord.stage))).all()
    stages: dict[str, str] = {lead: stage for lead, stage in rows}
    return (
        events == sum(s.events_applied for s in states)
        and leads == len(states)
        and handoffs == sum(s.handoffs for s in states)
        and outcomes == sum(1 for s in states if s.outcome)
        and all(stages.get(s.lead_id) == s.stage for s in states)
    )


@pytest.mark.e2e
async def test_reports_match_what_the_simulated_leads_did(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, database_url: str
) -> None:
    rules = load_rules(TEST_RULES, TEST_TEMPLATES, TIME_SCALE)
    async with running_engine(
        dev_env.client, standin, tmp_path, time_scale=TIME_SCALE, database_url=database_url
    ) as engine:
        started = datetime.now(UTC)
        summary = await simulate(
            dev_env.client,
            rules,
            leads=LEADS,
            seed=SEED,
            settle_seconds=60,
            show_progress=False,
            task_queue=engine.task_queue,
            time_scale=TIME_SCALE,
        )
        ids = [f"sim{SEED}-{i:05d}" for i in range(LEADS)]
        # Let the absent rep's leads miss their SLA at least once before sales settles.
        await asyncio.sleep(6)
        states = await _settle_sales(dev_env.client, ids)
        db = make_engine(database_url)
        await wait_until(
            lambda: _read_model_caught_up(db, states), what="the read model catching up", timeout=60
        )
        states = await _settle_sales(dev_env.client, ids)  # nothing moved meanwhile
        assert _read_model_caught_up(db, states)
        # The same lead ids run again on the other database: end these ones.
        for i in ids:
            await dev_env.client.get_workflow_handle(workflow_id_for(i)).terminate("test over")

    # --- what happened, from the workflows' own state and the simulated reps' actions -------
    handoffs = [s for s in states if s.handoffs]
    assert summary.handed_off == len(handoffs) > 5
    turns = [a for s in states for a in s.assignments]
    rejections = [r for s in states for r in s.rejections]
    outcomes = [s.outcome for s in states if s.outcome]
    assert len(rejections) == summary.rejected > 0
    assert sum(o.amount or 0 for o in outcomes) == summary.won_amount > 0
    assert sum(a.misses for a in turns) > 0, "the absent rep never missed: no SLA data"

    # --- the read model's own rows -------------------------------------------------------
    with db.connect() as conn:
        touches = conn.execute(
            select(func.count()).select_from(TouchRecord).where(TouchRecord.status == "sent")  # type: ignore[arg-type]
        ).scalar_one()
        to_working = conn.execute(
            select(func.count(func.distinct(StageTransition.lead_id))).where(
                StageTransition.to_stage == "working"  # type: ignore[arg-type]
            )
        ).scalar_one()
        turns_rows = conn.execute(select(func.count()).select_from(SalesAssignment)).scalar_one()
    assert touches == sum(s.touches_sent for s in states)
    assert turns_rows == len(turns)
    reached_working = {
        s.lead_id for s in states for a in s.assignments if a.response in ("accepted", "contacted")
    }
    assert to_working == len(reached_working)

    query = ReportQuery(since=started - timedelta(days=1))

    # --- funnel ------------------------------------------------------------------------------
    funnel = run_report(db, "funnel", query)
    assert dict(funnel.table("stages_now").rows) == {  # type: ignore[arg-type]
        stage: n for stage, n in Counter(s.stage for s in states).items()
    } | {
        stage: 0
        for stage, _ in funnel.table("stages_now").rows
        if stage not in {s.stage for s in states}
    }
    assert funnel.summary["leads_created"] == LEADS
    assert funnel.summary["handed_off"] == len(handoffs)
    assert funnel.summary["accepted"] == len(reached_working)
    assert funnel.summary["won"] == sum(1 for o in outcomes if o.result == "won")
    assert funnel.summary["lost"] == sum(1 for o in outcomes if o.result == "lost")

    # --- SLA ----------------------------------------------------------------------------------
    sla = {row["rep"]: row for row in run_report(db, "sla", query).table("reps").as_dicts()}
    by_rep: dict[str, list[Any]] = {}
    for turn in turns:
        by_rep.setdefault(turn.rep, []).append(turn)
    assert set(sla) == set(by_rep)
    for rep, rep_turns in by_rep.items():
        in_time = [
            t
            for t in rep_turns
            if t.responded_at and t.due_at and t.responded_at <= t.due_at and not t.misses
        ]
        assert sla[rep]["received"] == len(rep_turns), rep
        assert sla[rep]["misses"] == sum(t.misses for t in rep_turns), rep
        assert sla[rep]["responded_in_time"] == len(in_time), rep
        responded = [
            (t.responded_at - t.at).total_seconds() / 60 for t in rep_turns if t.responded_at
        ]
        if responded:
            got = sla[rep]["median_minutes_to_response"]
            ordered = sorted(responded)
            nearest_rank = ordered[(len(ordered) + 1) // 2 - 1]
            assert got == pytest.approx(nearest_rank, abs=0.01) or got == pytest.approx(
                median(responded), abs=0.01
            ), rep

    # --- returns ------------------------------------------------------------------------------
    returns = run_report(db, "returns", query)
    assert returns.summary["handed_off"] == sum(s.handoffs for s in states)
    assert returns.summary["rejected"] == len(rejections)
    assert {r["reason"]: r["rejected"] for r in returns.table("by_reason").as_dicts()} == dict(
        Counter(r.reason for r in rejections)
    )

    # --- influence ------------------------------------------------------------------------------
    deals = {r["group"]: r for r in run_report(db, "influence", query).table("deals").as_dicts()}
    closed = [s for s in states if s.outcome and s.handoff]
    influenced = [s for s in closed if s.handoff and s.handoff.touches_before > 0]
    plain = [s for s in closed if s not in influenced]
    for group, members in (("influenced", influenced), ("not influenced", plain)):
        row = deals.get(group, {"deals": 0, "won_amount": 0})
        assert row["deals"] == len(members), group
        assert (row["won_amount"] or 0) == pytest.approx(
            sum(s.outcome.amount or 0 for s in members if s.outcome and s.outcome.result == "won")
        ), group

    # --- cost ---------------------------------------------------------------------------------
    month_start = query.since.date().replace(day=1)  # type: ignore[union-attr]
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    record_cost(db, "webinar-q4", 4000.0, period_start=month_start, period_end=next_month)
    cost = {
        r["campaign"]: r
        for r in run_report(db, "cost", ReportQuery()).table("campaigns").as_dicts()
    }
    per_campaign = Counter(s.profile.campaign for s in states)
    won_by_campaign = Counter(
        s.profile.campaign for s in states if s.outcome and s.outcome.result == "won"
    )
    for campaign, leads in per_campaign.items():
        assert cost[campaign or "(none)"]["leads"] == leads, campaign
        assert cost[campaign or "(none)"]["deals"] == won_by_campaign[campaign], campaign
    webinar = cost["webinar-q4"]
    assert webinar["cost"] == pytest.approx(4000.0)
    assert webinar["cost_per_lead"] == pytest.approx(4000.0 / per_campaign["webinar-q4"], abs=0.01)
