"""Graceful under overload (issue 18): a command facing a Temporal that refuses requests with
``RESOURCE_EXHAUSTED`` (here a dev server held to one request a second for the namespace) asks
again, saying so, and finishes, instead of failing half-way: ``nurture lead add`` of a CSV starts
every lead once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.client.patience import Patience
from nurture.client.temporal import installed_binary
from nurture.contract.names import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
LEADS = 12
ONE_REQUEST_A_SECOND = [
    "--dynamic-config-value",
    "frontend.namespaceRPS=1",
    "--dynamic-config-value",
    "frontend.namespaceBurstRatio=1",
]


@pytest.fixture
async def overloaded_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=ONE_REQUEST_A_SECOND,
    )
    yield env
    await env.shutdown()


async def test_lead_add_waits_out_an_overloaded_server_and_starts_every_lead_once(
    overloaded_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    rows = [f"busy-{run}-{n},p{n}@corp.example,Pat" for n in range(LEADS)]
    (tmp_path / "leads.csv").write_text("lead_id,email,first_name\n" + "\n".join(rows) + "\n")
    queue = f"busy-{run}"
    address = overloaded_env.client.service_client.config.target_host
    added = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(ROOT / "starter.py"),
            *("lead", "add", "leads.csv"),
            "--task-queue",
            queue,
        ],
        cwd=tmp_path,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert added.returncode == 0, added.stderr[-3000:]
    assert f"{LEADS} of {LEADS} rows applied" in added.stdout
    assert "Temporal is overloaded; asking again" in added.stderr  # it said so
    assert "namespace rate limit exceeded" in added.stderr

    patient = await Client.connect(address, interceptors=[Patience()])
    started = await patient.count_workflows(f"TaskQueue = '{queue}'")
    assert started.count == LEADS
