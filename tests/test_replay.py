"""Replay: recorded histories of every shipped workflow version must replay on today's code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from nurture.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, running_engine
from tests.scenarios import SCENARIO_TIME_SCALE, full_life
from workflows.lead import LeadWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _replayer() -> Replayer:
    return Replayer(workflows=[LeadWorkflow], data_converter=pydantic_data_converter)


def test_histories_of_shipped_versions_are_kept() -> None:
    assert HISTORIES, "no recorded histories: run python -m tests.record_histories v1"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


async def test_a_fresh_full_life_replays_deterministically(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    async with running_engine(
        dev_env.client, standin, tmp_path, time_scale=SCENARIO_TIME_SCALE
    ) as engine:
        handle = await full_life(engine, lead_id("replay"))
        history = await handle.fetch_history()
    kinds = {e.WhichOneof("attributes") for e in history.events}
    assert "workflow_execution_update_accepted_event_attributes" in kinds
    assert "timer_fired_event_attributes" in kinds
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
