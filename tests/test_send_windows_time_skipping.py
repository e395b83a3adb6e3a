"""Send windows and the frequency cap on durable timers: a touch due at night goes out when
the window opens in the lead's time zone; a touch over the cap waits and is never lost."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from nurture.contract.messages import LeadState
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import TEST_RULES, lead_id, lead_state, running_engine

CADENCES = """
sender: {{email: marketing@test.example, name: Test Co}}
send_window: {window}
default_timezone: UTC
{cap}
cadences:
  - id: general
    name: Everyone
    steps:
{steps}
  - id: recycle
    name: Recycle
    recycle: true
    steps:
      - {{name: back, delay: 1d, template: t/touch.html, subject: "Back"}}
"""


def rules_with(
    tmp_path: Path,
    steps: list[tuple[str, str]],
    cap: str = "",
    window: str = '{days: weekdays, start: "08:00", end: "18:00"}',
) -> Path:
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    lines = "\n".join(
        f'      - {{name: {name}, delay: {delay}, template: t/touch.html, subject: "{name}"}}'
        for name, delay in steps
    )
    (config / "cadences.yaml").write_text(CADENCES.format(cap=cap, steps=lines, window=window))
    return config


def next_local(zone: ZoneInfo, weekday: int, at: time, after: datetime) -> datetime:
    """The next local ``at`` on ``weekday`` (0 = Monday) at least a day after ``after``."""
    day = (after + timedelta(days=1)).astimezone(zone).date()
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return datetime.combine(day, at, tzinfo=zone)


def sends(state: LeadState) -> list[datetime]:
    return [t.at for t in state.timeline if t.kind == "touch"]


async def touch_due_at(
    env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    zone: str,
    due_local: datetime,
) -> LeadState:
    """A lead in ``zone`` whose first touch comes due at ``due_local``; its state once the
    touch has had two days to go out."""
    delay = int((due_local - datetime.now(UTC)).total_seconds()) + 60  # due at hh:01
    config = rules_with(tmp_path, [("first", f"{delay}s")])
    lead = lead_id()
    async with running_engine(env.client, standin, tmp_path, config_dir=config) as engine:
        handle = await engine.profile(lead_id=lead, email="tz@corp.example", timezone=zone)
        await env.sleep(timedelta(seconds=delay) + timedelta(days=3))
        state = await lead_state(handle)
    assert len(standin.messages_with(lead_id=lead)) == 1
    return state


async def test_a_touch_due_at_two_in_the_morning_goes_out_when_the_window_opens(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    zone = ZoneInfo("America/New_York")
    due = next_local(zone, weekday=2, at=time(2, 0), after=datetime.now(UTC))  # a Wednesday
    state = await touch_due_at(time_skipping_env, standin, tmp_path, zone.key, due)

    (sent,) = sends(state)
    local = sent.astimezone(zone)
    assert (local.date(), local.hour, local.minute) == (due.date(), 8, 0)
    deferred = [t.detail for t in state.timeline if t.kind == "touch deferred"]
    assert len(deferred) == 1 and "outside send window Mon–Fri 08:00–18:00" in deferred[0]
    assert "America/New_York" in deferred[0]
    assert state.touches_deferred == 1 and state.touches_sent == 1


async def test_a_touch_due_on_saturday_night_waits_for_monday_morning_in_the_leads_zone(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    zone = ZoneInfo("Asia/Tokyo")
    due = next_local(zone, weekday=5, at=time(2, 0), after=datetime.now(UTC))
    state = await touch_due_at(time_skipping_env, standin, tmp_path, zone.key, due)

    local = sends(state)[0].astimezone(zone)
    assert (local.date(), local.hour, local.minute) == (due.date() + timedelta(days=2), 8, 0)


async def test_the_frequency_cap_defers_touches_without_losing_any(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    config = rules_with(
        tmp_path,
        [("a", "0s"), ("b", "1d"), ("c", "1d"), ("d", "1d"), ("e", "1d")],
        cap="frequency_cap: {max_emails: 2, per: 7d}",
        window="anytime",  # so only the cap holds touches back
    )
    lead = lead_id()
    async with running_engine(
        time_skipping_env.client, standin, tmp_path, config_dir=config
    ) as engine:
        handle = await engine.profile(lead_id=lead, email="cap@corp.example")
        await time_skipping_env.sleep(timedelta(days=6))
        early = await lead_state(handle)
        await time_skipping_env.sleep(timedelta(days=20))
        state = await lead_state(handle)

    assert [m.subject for m in standin.messages_with(lead_id=lead)] == ["a", "b", "c", "d", "e"]
    assert early.touches_sent == 2 and early.cadence is not None
    assert early.cadence.step_index == 2  # c is held, in its place, not skipped
    times = sends(state)
    for at in times:
        assert len([t for t in times if at - timedelta(days=7) < t <= at]) <= 2
    assert times[2] - times[0] >= timedelta(days=7)
    assert state.touches_deferred >= 2
    assert any("frequency cap 2 per 7 days" in t.detail for t in state.timeline)
