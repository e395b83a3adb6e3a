"""Record the histories of the current workflow version for replay tests.

Run once per shipped workflow change: ``python -m tests.record_histories vN``. The files it
writes under tests/histories/ are committed and replayed by tests/test_replay.py forever, so a
change that would break running leads fails CI until it is gated with ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.sendgrid_standin import SendGridStandIn
from nurture.temporal import installed_binary
from tests.conftest import running_engine
from tests.scenarios import SCENARIO_TIME_SCALE, full_life
from workflows.lead import SEARCH_ATTRIBUTES

HISTORIES = Path(__file__).parent / "histories"


async def record(version: str) -> Path:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    try:
        with SendGridStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
            async with running_engine(
                env.client, standin, Path(tmp), time_scale=SCENARIO_TIME_SCALE
            ) as engine:
                handle = await full_life(engine, f"replay-{version}")
                history = await handle.fetch_history()
    finally:
        await env.shutdown()
    out = HISTORIES / f"lead-full-life-{version}.json"
    out.write_text(history.to_json())
    return out


if __name__ == "__main__":
    print(asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "v1")))
