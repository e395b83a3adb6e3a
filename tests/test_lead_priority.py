"""A call request puts its lead ahead of nurture work in Temporal's queues, and the rep's
verdict puts it back: seen as the operator sees it (``describe``, the history), through the
HTTP edge as a website or a CRM sends it, on a dev server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from nurture.core.urgency import SALES
from nurture.domain.leads import workflow_id_for
from tests.conftest import lead_id, wait_for_email, wait_for_state
from workflows.lead import LeadWorkflow

if TYPE_CHECKING:
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]

OPTIONS_UPDATED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED
SCORE_TO_SALES = ["form_fill", "form_fill", "download"]  # the test rules' threshold, by score


async def priority_of(client: Client, lead: str) -> int:
    """The lead's workflow priority key as Temporal holds it (0: the default)."""
    described = await client.get_workflow_handle(workflow_id_for(lead)).describe()
    return described.raw_description.workflow_execution_info.priority.priority_key


async def post(api: Api, path: str, body: Any, who: str = "ingest") -> dict[str, Any]:
    answer = await api.http.post(path, json=body, headers=api.auth(who))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_a_call_request_puts_its_lead_ahead_and_the_reps_verdict_puts_it_back(
    api: Api, data_converter: DataConverter
) -> None:
    client = api.engine.client
    caller, reader, newcomer = lead_id("caller"), lead_id("reader"), lead_id("newcomer")
    await post(
        api,
        "/api/leads",
        [
            {"lead_id": caller, "email": f"{caller}@corp.example", "region": "EMEA"},
            {"lead_id": reader, "email": f"{reader}@corp.example", "region": "EMEA"},
        ],
    )
    await post(
        api,
        "/api/events",
        [
            {"lead_id": reader, "type": "page_view"},  # nurture work: stays in line
            {"lead_id": caller, "type": "requested_call"},
            {"lead_id": newcomer, "type": "requested_call"},  # no workflow yet: starts ahead
        ],
    )
    handle = client.get_workflow_handle(workflow_id_for(caller))
    state = await wait_for_state(handle, lambda s: s.stage == "assigned")
    await wait_for_email(api.engine.standin, caller, "handoff")
    assert await priority_of(client, caller) == SALES
    assert await priority_of(client, newcomer) == SALES
    assert await priority_of(client, reader) == 0

    rep = state.owner or ""
    await post(api, f"/api/leads/{caller}/accept", {}, who=rep)
    assert await priority_of(client, caller) == SALES  # sales still works it
    returned = await post(api, f"/api/leads/{caller}/reject", {"reason": "no budget"}, who=rep)
    assert returned["stage"] == "recycled"
    assert await priority_of(client, caller) == 0

    # the operator's record: two changes in the history, which replays on the current code
    history = await handle.fetch_history()
    changes = [e for e in history.events if e.event_type == OPTIONS_UPDATED]
    assert len(changes) == 2, changes
    replayer = Replayer(workflows=[LeadWorkflow], data_converter=data_converter)
    replayed = await replayer.replay_workflow(
        WorkflowHistory(handle.id, list(history.events)), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None, replayed.replay_failure

    # a lead handed off by its score was never put ahead: its verdict records nothing
    await post(api, "/api/events", [{"lead_id": reader, "type": t} for t in SCORE_TO_SALES])
    reader_handle = client.get_workflow_handle(workflow_id_for(reader))
    reader_state = await wait_for_state(reader_handle, lambda s: s.stage == "assigned")
    assert await priority_of(client, reader) == 0
    owner = reader_state.owner or ""
    await post(api, f"/api/leads/{reader}/accept", {}, who=owner)
    await post(api, f"/api/leads/{reader}/outcome", {"result": "lost"}, who=owner)
    assert not [
        e for e in (await reader_handle.fetch_history()).events if e.event_type == OPTIONS_UPDATED
    ]
