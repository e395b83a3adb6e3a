"""Each class of SendGrid error, through the real client against the stand-in, under time
skipping: rate limits and outages are retried (honouring the rate-limit reset) and the touch
goes out exactly once; refusals are not retried, surface on the lead, and the cadence goes on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import OutboxMessage, make_engine
from tests.conftest import Engine, lead_id, lead_state, running_engine


def outbox(engine: Engine, lead: str) -> list[OutboxMessage]:
    with Session(make_engine(engine.database_url)) as session:
        query = select(OutboxMessage).where(OutboxMessage.lead_id == lead)
        return sorted(session.exec(query).all(), key=lambda r: r.created_at)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_rate_limits_and_outages_are_retried_and_the_touch_goes_out_once(
    status: int, time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    standin.fail_next(status, count=2)
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="ray@corp.example", first_name="Ray")
        await time_skipping_env.sleep(timedelta(hours=2))
        state = await lead_state(handle)
        (row,) = outbox(engine, lead)

    assert [m.subject for m in standin.messages_with(lead_id=lead)] == ["Hello Ray"]
    assert (row.status, row.attempts) == ("sent", 3)  # two refusals, then accepted
    assert state.touches_sent == 1 and state.last_error is None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "SendGrid refused the message (400)"),
        (401, "SendGrid refused the message (401)"),
        (403, "SendGrid refused the message (403)"),
        (413, "SendGrid refused the message (413)"),
    ],
)
async def test_a_refusal_is_not_retried_surfaces_on_the_lead_and_the_cadence_goes_on(
    status: int,
    reason: str,
    time_skipping_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
) -> None:
    lead = lead_id()
    standin.fail_next(status)
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="ray@corp.example", first_name="Ray")
        await time_skipping_env.sleep(timedelta(days=4))  # the follow-up comes 3 d later
        state = await lead_state(handle)
        rows = outbox(engine, lead)

    assert [m.subject for m in standin.messages_with(lead_id=lead)] == ["Following up"]
    assert [(r.status, r.attempts) for r in rows] == [("refused", 1), ("sent", 1)]
    assert state.last_error is not None and reason in state.last_error
    assert any(t.kind == "error" and reason in t.detail for t in state.timeline)
    assert state.touches_sent == 1
