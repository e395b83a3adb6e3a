"""Record the histories of the current workflow version for replay tests.

Run once per shipped workflow change: ``python -m tests.record_histories vN`` (or
``python -m tests.record_histories vN db-outage`` for one of ``LIVES`` alone). The files it
writes under tests/histories/ are committed and replayed by tests/test_replay.py forever, so a
change that would break running leads fails CI until it is gated with ``workflow.patched``.
The rules versions the histories name are written beside them (``tests/recorded_rules.py``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.client.temporal import installed_binary
from nurture.config.settings import CrmSettings
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.standins.crm_standin import SalesforceStandIn
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import postgres_database, running_engine, wait_for_state
from tests.recorded_rules import keep_rules_named
from tests.scenarios import (
    OUTAGE_TIME_SCALE,
    SCENARIO_TIME_SCALE,
    SCENARIOS,
    backlog_rules,
    crm_life,
    crm_rules,
    database_outage,
    outage_rules,
    send_backlog,
)

HISTORIES = Path(__file__).parent / "histories"
Paths = list[Path]
BACKLOG_SIZE = (150, 1000)
"""Events, and bytes of props each: 130 carried to the next run are 166 KB, more than a run
carries since the change it was recorded for (``CARRIED_BYTES_MAX``)."""


def _keep(history: WorkflowHistory, name: str, version: str) -> list[Path]:
    out = HISTORIES / f"lead-{name}-{version}.json"
    out.write_text(history.to_json())
    return [out, *keep_rules_named(history)]


async def _scenarios(client: Client, standin: SendGridStandIn, tmp: Path, version: str) -> Paths:
    written = []
    async with running_engine(client, standin, tmp, time_scale=SCENARIO_TIME_SCALE) as engine:
        for name, scenario in SCENARIOS.items():
            handle = await scenario(engine, f"replay-{name}-{version}")
            written += _keep(await handle.fetch_history(), name, version)
    return written


async def _crm(client: Client, standin: SendGridStandIn, tmp: Path, version: str) -> Paths:
    with SalesforceStandIn(client_id="nurture", client_secret="s3cret") as salesforce:
        async with running_engine(
            client,
            standin,
            tmp,
            config_dir=crm_rules(tmp),
            time_scale=SCENARIO_TIME_SCALE,
            crm=CrmSettings(salesforce.url, client_id="nurture", client_secret="s3cret"),
        ) as engine:
            handle = await crm_life(engine, salesforce, f"replay-crm-{version}")
            return _keep(await handle.fetch_history(), "crm", version)


async def _outage(client: Client, standin: SendGridStandIn, tmp: Path, version: str) -> Paths:
    with postgres_database("nurture_replay") as url:  # a database that can be cut off
        async with running_engine(
            client,
            standin,
            tmp,
            config_dir=outage_rules(tmp),
            time_scale=OUTAGE_TIME_SCALE,
            database_url=url,
        ) as engine:
            handle = await database_outage(engine, f"replay-db-outage-{version}", url)
            return _keep(await handle.fetch_history(), "db-outage", version)


async def _backlog(client: Client, standin: SendGridStandIn, tmp: Path, version: str) -> Paths:
    """The first run of a lead that met more events than a run applies, every one in its
    first workflow task: it ends carrying the rest to the next run."""
    queue = f"backlog-{version}"
    first_run = await send_backlog(client, f"replay-backlog-{version}", queue, *BACKLOG_SIZE)
    async with running_engine(
        client, standin, tmp, config_dir=backlog_rules(tmp), task_queue=queue
    ):
        latest = client.get_workflow_handle(first_run.id)
        await wait_for_state(latest, lambda s: s.events_applied == BACKLOG_SIZE[0], timeout=60)
    return _keep(await first_run.fetch_history(), "backlog", version)


LIVES = {"scenarios": _scenarios, "crm": _crm, "db-outage": _outage, "backlog": _backlog}


async def record(version: str, lives: list[str]) -> Paths:
    """Record ``lives`` (every one when empty) with this checkout's code as ``version``."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    written = []
    try:
        with SendGridStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
            for name in lives or LIVES:
                (Path(tmp) / name).mkdir()
                written += await LIVES[name](env.client, standin, Path(tmp) / name, version)
    finally:
        await env.shutdown()
    return written


if __name__ == "__main__":
    version, *lives = sys.argv[1:] or ["v1"]
    for path in asyncio.run(record(version, lives)):
        print(path)
