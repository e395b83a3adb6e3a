"""The start-rate benchmark runs end to end at a tiny size: ``nurture lead add`` from a CSV in
its own process and ``POST /api/leads/import`` of a running ``nurture serve``, against the
counting workflow's starter (figures for bench/README.md, never asserted as timings)."""

from __future__ import annotations

import asyncio

import pytest

from bench.start_rate import run


@pytest.mark.e2e
async def test_start_rate_starts_every_lead_through_the_cli_the_api_and_the_baseline() -> None:
    found = await asyncio.wait_for(run(24), 300)
    assert found["leads"] == found["leads_with_a_row"] == 24  # every lead ran its first task
    assert found["api_leads_with_a_row"] == 24  # and every lead the import accepted
    assert found["leads_per_s"] > 0 and found["counting_per_s"] > 0
    assert found["ratio"] == pytest.approx(found["counting_s"] / found["lead_add_s"], abs=0.01)
    api_ratio = found["counting_s"] / found["api_import_s"]
    assert found["api_ratio"] == pytest.approx(api_ratio, rel=0.05)  # of rounded seconds
