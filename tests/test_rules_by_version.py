"""Rules shared by version (issue 18, footprint): a lead's history records the version of the
rules it read, not the rules; a worker that never loaded that version (a new process, another
machine) reads it from the engine database and the lead goes on; with no place to read it the
lead waits instead of deciding with other rules; while the database cannot keep a new version,
leads are handed the rules themselves, as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.rules import RulesActivities
from nurture.config.rules_source import RulesSource
from nurture.contract import shared_rules
from nurture.contract.messages import LOAD_RULES, LoadRulesRequest
from nurture.domain.rules import Rules
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.rules_content import kept_rules
from tests.conftest import (
    TEST_RULES,
    TEST_TEMPLATES,
    lead_id,
    running_engine,
    wait_for_state,
)
from workflows.lead import LeadWorkflow


@contextmanager
def new_process_shelf() -> Iterator[shared_rules.RulesShelf]:
    """The shelf of a worker process that has met no rules version yet."""
    shelf, before = shared_rules.RulesShelf(), shared_rules.SHELF
    shared_rules.SHELF = shelf
    try:
        yield shelf
    finally:
        shared_rules.SHELF = before


async def rules_answers(client: Client, history: WorkflowHistory) -> list[tuple[int, object]]:
    """Each rules read's answer in the history: its size as recorded, and what it says."""
    answers = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != "core_local_activity" or "result" not in marker.details:
            continue
        codec = client.data_converter.payload_codec
        assert codec is not None
        data, result = await codec.decode(
            [marker.details["data"].payloads[0], marker.details["result"].payloads[0]]
        )
        if json.loads(data.data)["activity_type"] != LOAD_RULES:
            continue
        recorded: Payload = marker.details["result"].payloads[0]
        answers.append((recorded.ByteSize(), json.loads(result.data) if result.data else None))
    return answers


async def test_a_worker_that_never_loaded_a_leads_rules_reads_them_from_the_database(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id("shared")
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, email="ada@corp.example", country="GB")
        state = await wait_for_state(handle, lambda s: s.cadence is not None)
        history = await handle.fetch_history()
    version = state.rules_version
    answers = await rules_answers(dev_env.client, history)
    assert answers, "the lead read no rules"
    assert answers[0][1] == version  # the version, not the rules ...
    assert all(size < 300 for size, _ in answers)  # ... where 13 KB were recorded before
    kept = kept_rules(make_engine(engine.database_url), version)
    assert kept is not None and kept.version == version

    # Another worker process on the same database and queue: its shelf is empty, and only
    # its database keeps the version the lead's history names.
    with new_process_shelf() as shelf:
        async with running_engine(
            dev_env.client,
            standin,
            tmp_path,
            database_url=engine.database_url,
            task_queue=engine.task_queue,
        ) as again:
            await again.event(lead, "download")
            after = await wait_for_state(handle, lambda s: s.events_applied > state.events_applied)
        assert after.score.total > state.score.total
        assert shelf.rules(version) == kept

        # Replayed in the workflow sandbox, the rules read from the database there too.
        replayed = await Replayer(
            workflows=[LeadWorkflow], data_converter=dev_env.client.data_converter
        ).replay_workflow(await handle.fetch_history(), raise_on_replay_failure=False)
        assert replayed.replay_failure is None

    # With no place keeping that version, the lead waits (the workflow task fails and is
    # retried) rather than deciding with whatever rules a worker has.
    with new_process_shelf():
        refused = await Replayer(
            workflows=[LeadWorkflow], data_converter=dev_env.client.data_converter
        ).replay_workflow(history, raise_on_replay_failure=False)
    assert refused.replay_failure is not None
    assert 'r#type: "RulesUnavailable"' in str(refused.replay_failure)  # the message is encrypted


def test_while_the_database_cannot_keep_a_version_leads_get_the_rules_themselves(
    tmp_path: Path,
) -> None:
    source = RulesSource(TEST_RULES, TEST_TEMPLATES)
    activity = RulesActivities(source)
    asked = LoadRulesRequest(by_version=True)
    handed = activity.load_rules(asked)  # no database yet: nowhere to keep it
    assert isinstance(handed, Rules) and handed.version == source.current().version

    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    source.record_status_in(engine)
    with new_process_shelf() as shelf:
        assert activity.load_rules(asked) == source.current().version
        assert shelf.rules(source.current().version) is source.current()
    assert activity.load_rules(LoadRulesRequest(known_version=source.current().version)) is None
    # Leads begun before versions were shared still get the rules.
    assert activity.load_rules(LoadRulesRequest()) == source.current()
