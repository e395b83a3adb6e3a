"""One bad input never fails a workflow task (issue 13, "make it hard to ship again", and the
workflow side of finding 4): an event, profile or rep action that cannot be applied is recorded
on the lead and skipped; the lead answers its query and applies its next event."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from nurture.contract.messages import LeadState, RejectRequest
from nurture.core.lead import event_time
from nurture.domain import scoring
from nurture.domain.leads import LeadEvent
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, lead_state, running_engine, wait_for_state
from workflows.lead import LeadWorkflow

POISON = "poison_pill"


async def test_an_event_that_raises_inside_scoring_is_recorded_and_skipped(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception from a pure function while applying one event (here scoring, patched to
    raise for one event type: ``nurture`` is passed through to the sandbox) is noted on the
    timeline and in ``last_error``; the next event is applied as usual. Before, the workflow
    task failed and was retried forever: the lead answered nothing and applied nothing."""
    real_score_event = scoring.score_event

    def score_event(card, event, rules, now):  # type: ignore[no-untyped-def]
        if event.type == POISON:
            raise ZeroDivisionError("a scoring rule divided by zero")
        return real_score_event(card, event, rules, now)

    monkeypatch.setattr(scoring, "score_event", score_event)
    lead = lead_id("bad")
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        await engine.profile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA")
        await engine.event(lead, POISON, event_id="e1")
        handle = await engine.event(lead, "page_view", url="/pricing", event_id="e2")
        state = await wait_for_state(handle, lambda s: s.events_applied == 2, timeout=15)
    assert state.last_error is not None
    assert state.last_error.startswith(f"event {POISON} (e1) skipped: ZeroDivisionError")
    assert [e.kind for e in state.timeline].count("error") == 1
    assert "page_view" in state.score.tallies or state.score.recent[-1].event_type == "page_view"
    assert state.stage == "nurturing"


async def test_a_rep_action_that_raises_is_refused_and_changes_nothing(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reject whose score reset raises half-way is refused to the caller (the update fails,
    not the workflow task), leaves the lead exactly as it was apart from the recorded error,
    and the owner can still act on it."""

    def broken_reset(card, now, reason):  # type: ignore[no-untyped-def]
        raise RuntimeError("reset exploded")

    monkeypatch.setattr(scoring, "reset_behaviour", broken_reset)
    lead = lead_id("badact")
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        await engine.profile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA")
        before = await engine.request_call(lead)
        handle = dev_env.client.get_workflow_handle(f"lead-{lead}")
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                LeadWorkflow.reject, RejectRequest(rep=before.owner or "", reason="no budget")
            )
        after = await lead_state(handle)
        await engine.event(lead, "page_view", url="/docs")
        later = await wait_for_state(handle, lambda s: s.events_applied == after.events_applied + 1)
    assert after.stage == "assigned" and after.owner == before.owner
    assert after.rejections == [] and after.cadence is None
    assert after.last_error is not None and "RuntimeError: reset exploded" in after.last_error
    assert later.stage == "assigned"


def _far_event(lead: str, at: str, event_id: str) -> LeadEvent:
    """An event the edge should refuse (issue 13 finding 4), built without validation so this
    test sends it whatever the edge's model allows."""
    return LeadEvent.model_construct(
        lead_id=lead,
        type="page_view",
        at=datetime.fromisoformat(at),
        url="/pricing",
        event_id=event_id,
        campaign=None,
        props={},
    )


async def test_an_event_dated_9999_12_31_does_not_break_the_lead(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 4 (workflow side): events dated 9999-12-31T23:59:59Z or with a -14:00 offset
    that got past the edge count from when they arrived; the lead keeps its decay timer and
    answers its next event. Before, every workflow task failed with "date value out of range"
    (the decay clock: last activity + inactive_after)."""
    lead = lead_id("far")
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA")
        await wait_for_state(handle, lambda s: s.cadence is not None)
        for n, at in enumerate(("9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-14:00")):
            await handle.signal(LeadWorkflow.event, _far_event(lead, at, f"far{n}"))
        await engine.event(lead, "page_view", url="/docs", event_id="next")
        state: LeadState = await wait_for_state(
            handle, lambda s: any("/docs" in e.detail for e in s.timeline), timeout=15
        )
    assert state.score.last_activity_at is not None
    assert state.score.last_activity_at.year < 9999
    assert state.last_error is None


def test_event_time_is_never_later_than_arrival_nor_out_of_range() -> None:
    received = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert event_time(None, received) == received
    assert event_time(datetime(2026, 12, 1, tzinfo=UTC), received) == datetime(
        2026, 12, 1, tzinfo=UTC
    )
    assert event_time(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), received) == received
    far_west = datetime.fromisoformat("9999-12-31T23:59:59-14:00")
    assert event_time(far_west, received) == received
    far_east = datetime.fromisoformat("0001-01-01T00:00:00+14:00")
    assert event_time(far_east, received) == received
