"""The HTTP service on a real dev server with a worker, and an API key per role (and for reps
alice and bob): the support the HTTP tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from nurture.access.auth import create_key
from nurture.config.tracking_settings import TrackingSettings
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from tests.conftest import TEST_RULES, Engine, running_engine


@dataclass
class Api:
    engine: Engine
    http: httpx.AsyncClient
    keys: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@asynccontextmanager
async def running_api(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    config_dir: Path = TEST_RULES,
    tracking: TrackingSettings | None = None,
    database_url: str | None = None,
) -> AsyncIterator[Api]:
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        config_dir=config_dir,
        web=True,
        tracking=tracking,
        database_url=database_url,
    ) as engine:
        db = make_engine(engine.database_url)
        keys = {
            "ingest": create_key(db, "ingest", "tracker")[1],
            "marketer": create_key(db, "marketer", "mia")[1],
            "operator": create_key(db, "operator", "ops")[1],
            "alice": create_key(db, "rep", "alice", rep_id="alice")[1],
            "bob": create_key(db, "rep", "bob", rep_id="bob")[1],
        }
        async with httpx.AsyncClient(base_url=engine.web_url or "", timeout=30) as http:
            yield Api(engine, http, keys)


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> AsyncIterator[Api]:
    """The service with a worker; import it into a test module to use it there."""
    async with running_api(dev_env, standin, tmp_path) as running:
        yield running
