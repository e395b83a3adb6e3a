"""Engagement per cadence step (issue 17), end to end on SQLite and PostgreSQL: real lead
workflows send a multichannel cadence (emails, a call task, a direct-mail task) through the
SendGrid stand-in; the stand-in then posts signed webhook events about those emails (deliveries,
bounces, people's and proxies' opens, duplicates, clicks, unsubscribes, spam reports); reps do
some call tasks; some leads are handed to sales. Every figure of the report is checked against
counts this test computes from what the stand-in sent and emitted and what it did itself."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlmodel import col
from temporalio.testing import WorkflowEnvironment

if TYPE_CHECKING:
    from playwright.async_api import Browser

from nurture.access.dashboard_links import DashboardLinks
from nurture.client.sales import act, read_state
from nurture.contract.messages import LeadState, TaskCompletion
from nurture.domain.leads import workflow_id_for
from nurture.reports import ReportQuery, run_report
from nurture.standins.sendgrid_standin import RecordedMessage, SendGridStandIn
from nurture.store.db import SalesTask, make_engine
from nurture.store.read_model import HandoffRecord, LeadEventRecord, TouchRecord
from tests.conftest import (
    ARTIFACTS,
    TEST_SECRET,
    lead_id,
    running_engine,
    wait_for_state,
    wait_until,
)
from tests.scenarios import enter_multichannel

TIME_SCALE = 14400.0  # 1 h steps take 0.25 s; a call task is due after 6 s, the mail after 12
LEADS = 10
EMAIL_STEPS = ("intro", "after-call", "last")
CALL_OUTCOMES = ["connected", "connected", "connected", "no_answer", "no_answer", "left_voicemail"]


Row = tuple[str, int, str, str | None]
SUBJECTS = {
    None: {"Intro", "Last"},
    "plain": {"After the call"},
    "warm": {"Thanks for your time, Cy"},
}


def touch_step(message: RecordedMessage) -> Row:
    """(cadence, cycle, step, variant) from the touch key,
    ``touch:<lead>:<cadence>:e<n>:c<N>:<step>``, and the A/B step's ``variant`` custom arg."""
    _, _, cadence, _, cycle, step = message.custom_args["touch_id"].split(":")
    return cadence, int(cycle.removeprefix("c")), step, message.custom_args.get("variant")


def plan_events(
    rng: random.Random, message: RecordedMessage
) -> tuple[list[dict[str, Any]], set[str]]:
    """What the provider says happened to one email, and what the report should count."""
    events: list[dict[str, Any]] = [{"event": "processed"}]
    counted: set[str] = set()
    fate = rng.random()
    if fate < 0.1:
        events.append({"event": rng.choice(["bounce", "dropped"])})
        return events, {"bounced"}
    if fate < 0.15:
        events.append({"event": "bounce", "type": "blocked"})  # temporary: not a bounce
    events.append({"event": "delivered"})
    counted.add("delivered")
    if rng.random() < 0.3:
        events.append({"event": "open", "sg_machine_open": True})
        counted.add("machine_open")
    if rng.random() < 0.5:
        events += [{"event": "open"}] * rng.choice([1, 2, 3])  # a person reading it again
        counted.add("open")
    if rng.random() < 0.3:
        events += [{"event": "click", "url": "https://test.example/pricing"}] * rng.choice([1, 2])
        counted.add("click")
    if rng.random() < 0.1:
        events.append({"event": "unsubscribe"})
        counted.add("unsubscribe")
    elif rng.random() < 0.05:
        events.append({"event": "spamreport"})
        counted.add("spamreport")
    return events, counted


async def caught_up(
    engine: Any, db: Any, leads: list[str], touch_rows: int, timeout: float = 30.0
) -> list[LeadState]:
    """The leads' states once the read model holds every touch, every event they applied and
    every handoff they made (the webhook's events reach the leads asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        states = [await read_state(engine.client, lead) for lead in leads]
        with db.connect() as conn:
            touches = conn.execute(select(func.count()).select_from(TouchRecord)).scalar_one()
            events = conn.execute(select(func.count()).select_from(LeadEventRecord)).scalar_one()
            handoffs = conn.execute(select(func.count()).select_from(HandoffRecord)).scalar_one()
        if (touches, events, handoffs) == (
            touch_rows,
            sum(s.events_applied for s in states),
            sum(s.handoffs for s in states),
        ):
            return states
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"read model: {touches} touches, {events} events, {handoffs}")
        await asyncio.sleep(0.2)


async def test_every_figure_of_the_engagement_report_is_what_was_sent_and_emitted(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    database_url: str,
    browser: Browser,
) -> None:
    rng = random.Random(17)
    leads = [lead_id(f"eng{i}") for i in range(LEADS)]
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        time_scale=TIME_SCALE,
        web=True,
        database_url=database_url,
    ) as engine:
        handles = {}
        for lead in leads:
            handles[lead] = await enter_multichannel(engine, lead)
        # Reps do the call task of some leads, with these outcomes; the rest expire.
        done: dict[str, str] = {}
        for lead, outcome in zip(leads, CALL_OUTCOMES, strict=False):
            state = await wait_for_state(handles[lead], lambda s: len(s.tasks) == 1)
            task = state.tasks[0]
            await act(
                engine.client,
                lead,
                "complete_task",
                TaskCompletion(rep="alice", task_key=task.key, outcome=outcome),
            )
            done[lead] = outcome
        await wait_until(
            lambda: all(
                len(standin.messages_with(lead_id=lead, category="touch")) == len(EMAIL_STEPS)
                for lead in leads
            ),
            timeout=90,
            what="every lead's three emails",
        )
        # The provider reports on every email, in batches as SendGrid posts them.
        sent: Counter[Row] = Counter()
        expected: defaultdict[Row, Counter[str]] = defaultdict(Counter)
        touched_leads: defaultdict[Row, list[str]] = defaultdict(list)
        for lead in leads:
            for message in standin.messages_with(lead_id=lead, category="touch"):
                step = touch_step(message)
                assert message.subject in SUBJECTS[step[3]], (step, message.subject)
                sent[step] += 1
                touched_leads[step].append(lead)
                events, counted = plan_events(rng, message)
                expected[step].update(counted)
                delivery = await asyncio.to_thread(standin.emit_events, message.message_id, events)
                assert delivery.status == 200, delivery.response_body
        variants = {row[3]: n for row, n in sent.items() if row[3]}  # drawn from the lead ids
        plain, warm = variants.get("plain", 0), variants.get("warm", 0)
        counts = (  # the leader's sends first, whichever leads
            {f"{plain} sends each"}
            if plain == warm
            else {
                f"{plain} sends of plain, {warm} of warm",
                f"{warm} sends of warm, {plain} of plain",
            }
        )
        # SendGrid delivering the same events again (same sg_event_id) changes nothing.
        for delivery in standin.webhook_deliveries[-3:]:
            again = [
                {
                    k: e[k]
                    for k in ("event", "sg_event_id", "url", "type", "sg_machine_open")
                    if k in e
                }
                for e in reversed(delivery.events)  # a new post (the same one is a replay)
            ]
            message_id = delivery.events[0]["sg_message_id"].split(".")[0]
            repeated = await asyncio.to_thread(standin.emit_events, message_id, again)
            assert repeated.status == 200, repeated.response_body
        # Some leads ask for a call after all that; the events may have qualified others.
        for lead in leads[-3:]:
            await engine.request_call(lead)
        db = make_engine(database_url)
        states = await caught_up(engine, db, leads, LEADS * 5 + len(done))
        # The dashboard's section, in Chromium: a row per step, the figures of the report.
        page = await browser.new_page(viewport={"width": 1360, "height": 900})
        answer = await page.goto(DashboardLinks(TEST_SECRET, engine.web_url or "").url())
        assert answer is not None and answer.status == 200
        section = page.locator("#engagement")
        shown = {
            await row.locator(".step").inner_text(): await row.locator(".sent").inner_text()
            for row in await section.locator("tr.engagement-step").all()
        }
        assert shown == {
            "intro": str(LEADS),
            "call (call)": str(LEADS),
            **{f"after-call · {row[3]}": str(n) for row, n in sent.items() if row[3]},
            "brochure (direct mail)": str(LEADS),
            "last": str(LEADS),
        }
        verdicts = await section.locator("li.ab-test .verdict").all_inner_texts()
        if len(variants) == 2:  # the A/B test: too few sends to tell
            assert len(verdicts) == 2  # on clicks and on opens
            for verdict in verdicts:
                said = verdict.removeprefix("not enough evidence yet: ")
                assert said.removesuffix(", 30 each needed") in counts, verdict
        await section.screenshot(path=str(ARTIFACTS / f"engagement-{db.dialect.name}.png"))
        await page.close()
        for lead in leads:
            await dev_env.client.get_workflow_handle(workflow_id_for(lead)).terminate("test over")
    handed = {s.lead_id for s in states if s.handoffs}
    assert len(handed) >= 3

    report = run_report(db, "engagement", ReportQuery())
    rows = {
        (r["cadence"], r["cycle"], r["step"], r["variant"]): r
        for r in report.table("steps").as_dicts()
    }
    assert set(rows) == {*sent, *(("multichannel", 1, s, None) for s in ("call", "brochure"))}
    for step, n in sent.items():
        row, want = rows[step], expected[step]
        assert row["channel"] == "email"
        assert row["sent"] == n, step
        assert row["delivered"] == want["delivered"], step
        assert row["bounced"] == want["bounced"], step
        assert row["unique_opens"] == want["open"], step
        assert row["machine_opens"] == want["machine_open"], step
        assert row["unique_clicks"] == want["click"], step
        assert row["unsubscribes"] == want["unsubscribe"], step
        assert row["spam_reports"] == want["spamreport"], step
        opens = want["open"]
        assert row["click_to_open"] == (round(want["click"] / opens, 4) if opens else None)
        assert row["tasks"] == row["tasks_done"] == 0
        in_sales = sum(1 for lead in touched_leads[step] if lead in handed)
        assert row["handed_off_7d"] == row["handed_off_30d"] == in_sales, step
    call = rows[("multichannel", 1, "call", None)]
    mail = rows[("multichannel", 1, "brochure", None)]
    assert (call["channel"], call["sent"], call["tasks"], call["tasks_done"]) == (
        "call",
        0,
        LEADS,
        len(done),
    )
    outcomes = Counter(done.values())
    ordered = sorted(outcomes.items(), key=lambda item: (-item[1], item[0]))
    assert call["task_outcomes"] == ", ".join(f"{o} {n}" for o, n in ordered)
    assert call["handed_off_7d"] == len(handed)
    assert (mail["channel"], mail["tasks"], mail["tasks_done"], mail["task_outcomes"]) == (
        "direct_mail",
        LEADS,
        0,
        None,
    )
    # The summary adds the steps up; one cadence alone is the same here; another is empty.
    assert report.summary["sent"] == sum(sent.values())
    assert report.summary["machine_opens"] == sum(c["machine_open"] for c in expected.values())
    only = run_report(db, "engagement", ReportQuery(cadence="multichannel"))
    assert only.table("steps").rows == report.table("steps").rows
    assert run_report(db, "engagement", ReportQuery(cadence="general")).table("steps").rows == []
    with db.connect() as conn:  # the reps' outcomes the report read are the queue's
        kept_outcome = col(SalesTask.outcome)
        kept = conn.execute(select(kept_outcome).where(kept_outcome.is_not(None)))
        assert Counter(kept.scalars()) == outcomes
    db.dispose()
