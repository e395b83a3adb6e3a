"""Record the histories of the current workflow version for replay tests.

Run once per shipped workflow change: ``python -m tests.record_histories vN``. The files it
writes under tests/histories/ are committed and replayed by tests/test_replay.py forever, so a
change that would break running leads fails CI until it is gated with ``workflow.patched``.
The rules versions the histories name are written beside them (``tests/recorded_rules.py``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.client.temporal import installed_binary
from nurture.config.settings import CrmSettings
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.standins.crm_standin import SalesforceStandIn
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import running_engine
from tests.recorded_rules import keep_rules_named
from tests.scenarios import SCENARIO_TIME_SCALE, SCENARIOS, crm_life, crm_rules

HISTORIES = Path(__file__).parent / "histories"


async def record(version: str) -> list[Path]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    written = []
    try:
        with SendGridStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
            async with running_engine(
                env.client, standin, Path(tmp), time_scale=SCENARIO_TIME_SCALE
            ) as engine:
                for name, scenario in SCENARIOS.items():
                    handle = await scenario(engine, f"replay-{name}-{version}")
                    history = await handle.fetch_history()
                    out = HISTORIES / f"lead-{name}-{version}.json"
                    out.write_text(history.to_json())
                    written += [out, *keep_rules_named(history)]
            lead = f"replay-crm-{version}"
            (Path(tmp) / "crm").mkdir()
            with SalesforceStandIn(client_id="nurture", client_secret="s3cret") as salesforce:
                async with running_engine(
                    env.client,
                    standin,
                    Path(tmp) / "crm",
                    config_dir=crm_rules(Path(tmp)),
                    time_scale=SCENARIO_TIME_SCALE,
                    crm=CrmSettings(salesforce.url, client_id="nurture", client_secret="s3cret"),
                ) as engine:
                    handle = await crm_life(engine, salesforce, lead)
                    history = await handle.fetch_history()
                    out = HISTORIES / f"lead-crm-{version}.json"
                    out.write_text(history.to_json())
                    written += [out, *keep_rules_named(history)]
    finally:
        await env.shutdown()
    return written


if __name__ == "__main__":
    for path in asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "v1")):
        print(path)
