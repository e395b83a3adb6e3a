"""Multi-media cadences: call and direct-mail tasks in the inside-sales queue, their outcomes
scoring and moving the cadence on, and what happens when nobody does them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from nurture.client.sales import LeadActionError, act
from nurture.contract.messages import TaskCompletion
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import SalesTask, make_engine
from tests.conftest import Engine, lead_id, lead_state, running_engine, wait_for_state

ROOT = Path(__file__).parent.parent


def tasks_in_db(engine: Engine) -> list[SalesTask]:
    with Session(make_engine(engine.database_url)) as session:
        return list(session.exec(select(SalesTask).order_by(SalesTask.id)).all())  # type: ignore[arg-type]


async def multichannel_lead(
    engine: Engine,
    lead: str,
    phone: str | None = "+1 555 0100",
    address: str | None = "1 Main St, Springfield",
):  # type: ignore[no-untyped-def]
    return await engine.profile(
        lead_id=lead,
        email=f"{lead}@corp.example",
        first_name="Cy",
        company="Corp",
        phone=phone,
        address=address,
        custom={"track": "multichannel"},
    )


def emailed_steps(standin: SendGridStandIn, lead: str) -> list[str]:
    """The steps the lead was emailed, in order (``after-call`` is an A/B test of subjects)."""
    touches = standin.messages_with(lead_id=lead, category="touch")
    return [m.custom_args["touch_id"].rsplit(":", 1)[1] for m in touches]


async def test_a_cadence_mixing_email_call_and_mail_runs_end_to_end_and_outcomes_score(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id("multi")
    # 1 h steps become 0.25 s; a task may stay open 1 d -> 6 s, 2 d -> 12 s.
    async with running_engine(dev_env.client, standin, tmp_path, time_scale=14400) as engine:
        handle = await multichannel_lead(engine, lead)
        state = await wait_for_state(handle, lambda s: len(s.tasks) == 1)
        assert emailed_steps(standin, lead) == ["intro"]
        (call,) = tasks_in_db(engine)
        assert (call.channel, call.status, call.phone) == ("call", "open", "+1 555 0100")
        assert call.title == "Call Cy" and call.instructions == "Ask Cy about Corp"
        assert state.cadence is not None and state.cadence.waiting_task == call.key
        score = state.score.total

        refused = [
            TaskCompletion(rep="alice", task_key=call.key, outcome="sent"),
            TaskCompletion(rep="zed", task_key=call.key, outcome="connected"),
            TaskCompletion(rep="alice", task_key="no-such-task", outcome="connected"),
        ]
        messages = []
        for request in refused:
            with pytest.raises(LeadActionError) as caught:
                await act(engine.client, lead, "complete_task", request)
            messages.append(str(caught.value))
        assert "'sent' is not an outcome of a call task; use one of connected" in messages[0]
        assert "unknown rep 'zed'" in messages[1]
        assert "has no task 'no-such-task'" in messages[2]

        done = TaskCompletion(rep="alice", task_key=call.key, outcome="connected", note="keen")
        await act(engine.client, lead, "complete_task", done)
        state = await wait_for_state(handle, lambda s: s.score.total == score + 15)
        assert state.score.recent[-1].rule == "call_connected"
        with pytest.raises(LeadActionError, match="already done"):
            await act(engine.client, lead, "complete_task", done)
        # The cadence moved on at once: the next email, then the direct-mail task.
        state = await wait_for_state(handle, lambda s: len(s.tasks) == 2, timeout=15)
        assert emailed_steps(standin, lead) == ["intro", "after-call"]

        # The same from the command line, as inside sales would: list, then record the outcome.
        env = {
            **os.environ,
            "NURTURE_DATABASE_URL": engine.database_url,
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        }
        nurture = [sys.executable, "-c", "from starter import main; main()"]

        async def cli(*args: str) -> subprocess.CompletedProcess[str]:
            # In a thread: the worker runs on this event loop and must keep running.
            return await asyncio.to_thread(
                subprocess.run, [*nurture, *args], env=env, cwd=ROOT, capture_output=True, text=True
            )

        listed = await cli("tasks", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (open_task,) = [t for t in json.loads(listed.stdout) if t["lead_id"] == lead]
        assert open_task["channel"] == "direct_mail" and open_task["status"] == "open"
        task_id = str(open_task["id"])
        wrong = await cli("tasks", "done", task_id, "--outcome", "connected", "--rep", "alice")
        assert wrong.returncode == 2 and "use one of sent, returned" in wrong.stderr
        mailed = await cli("tasks", "done", task_id, "--outcome", "sent", "--rep", "bob")
        assert mailed.returncode == 0, mailed.stderr
        state = await wait_for_state(
            handle, lambda s: s.cadence is not None and s.cadence.parked, timeout=15
        )

    assert emailed_steps(standin, lead) == ["intro", "after-call", "last"]
    assert [(t.channel, t.status, t.outcome, t.closed_by) for t in tasks_in_db(engine)] == [
        ("call", "done", "connected", "alice"),
        ("direct_mail", "done", "sent", "bob"),
    ]
    assert [e.rule for e in state.score.recent[-2:]] == ["call_connected", "direct_mail_sent"]
    assert state.touches_sent == 3


async def test_a_task_nobody_does_expires_and_the_cadence_moves_on(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        handle = await multichannel_lead(engine, lead)
        await time_skipping_env.sleep(timedelta(hours=2))
        assert [t.status for t in tasks_in_db(engine)] == ["open"]
        assert emailed_steps(standin, lead) == ["intro"]  # waiting for the call, up to 1 d
        await time_skipping_env.sleep(timedelta(days=2))
        state = await lead_state(handle)

    assert emailed_steps(standin, lead) == ["intro", "after-call"]
    assert [(t.channel, t.status) for t in tasks_in_db(engine)] == [
        ("call", "expired"),
        ("direct_mail", "open"),
    ]
    assert [t.status for t in state.tasks] == ["expired", "open"]


async def test_missing_phone_or_address_skips_the_task_and_a_handoff_cancels_an_open_one(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    no_phone, handed_off = lead_id(), lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        first = await multichannel_lead(engine, no_phone, phone=None, address=None)
        await multichannel_lead(engine, handed_off)
        await time_skipping_env.sleep(timedelta(hours=4, minutes=30))
        skipped = await lead_state(first)
        await engine.request_call(handed_off)
        rows = tasks_in_db(engine)
        late = TaskCompletion(rep="alice", task_key=rows[0].key, outcome="connected")
        with pytest.raises(LeadActionError, match="was cancelled: the lead went to sales"):
            await act(engine.client, handed_off, "complete_task", late)

    details = [t.detail for t in skipped.timeline if t.kind == "touch skipped"]
    assert details == [
        "multichannel/call (cycle 1): no phone number on file",
        "multichannel/brochure (cycle 1): no postal address on file",
    ]
    assert emailed_steps(standin, no_phone) == ["intro", "after-call", "last"]
    assert [(t.lead_id, t.channel, t.status) for t in rows] == [(handed_off, "call", "cancelled")]
