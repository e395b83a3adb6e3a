"""The gauges a worker serves beside its counters (``nurture.runtime.metrics``): how many
touches are held now because their email cannot be rendered, and which rules version it uses.
Read from the engine database and the rules source every ``every`` seconds while it runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from temporalio.common import MetricMeter

from nurture.config.rules_source import RulesSource
from nurture.contract.names import RULES_INFO, TOUCHES_HELD
from nurture.reports.held import held_touches
from nurture.store.db import make_engine

log = structlog.get_logger(__name__)


async def keep_worker_gauges(
    meter: MetricMeter, engine: Engine, source: RulesSource, every: float = 15.0
) -> None:
    """Set the gauges now and every ``every`` seconds, until cancelled."""
    held = meter.create_gauge(TOUCHES_HELD, "touches held: their email cannot be rendered")
    rules = meter.create_gauge(RULES_INFO, "1, labelled with the rules version in use")
    shown: str | None = None
    while True:
        version = (await asyncio.to_thread(source.current)).version  # may re-read the files
        if version != shown:
            if shown is not None:
                rules.set(0, {"version": shown})  # the version before is no longer in use
            rules.set(1, {"version": version})
            shown = version
        try:
            total, _ = await asyncio.to_thread(held_touches, engine, 0)
        except SQLAlchemyError as exc:  # the database is down: the gauge keeps its last value
            log.warning("touches held not counted", error=str(exc))
        else:
            held.set(total)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def worker_gauges(
    meter: MetricMeter | None, database_url: str, source: RulesSource
) -> AsyncIterator[None]:
    """:func:`keep_worker_gauges` while the block runs (nothing without a ``meter``)."""
    if meter is None:
        yield
        return
    engine = make_engine(database_url)
    task = asyncio.create_task(keep_worker_gauges(meter, engine, source))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        engine.dispose()
