"""The idle-scale benchmark runs end to end at a tiny size (its figures are for bench/README.md,
never asserted as timings)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.idle_scale import IdleScaleResult, report, run


@pytest.mark.e2e
async def test_idle_scale_puts_leads_to_sleep_and_measures_the_worker(tmp_path: Path) -> None:
    result: IdleScaleResult = await asyncio.wait_for(run(20, 10, tmp_path / "data"), 180)
    assert result.leads == 20 and result.asleep_seconds > 0
    assert result.worker_rss_idle_mib > 0 and result.worker_rss_mib > 0
    assert result.server_disk_mib > 0
    asleep = [n for n, _ in result.rss_by_population]  # the worker's memory as leads fall asleep
    assert asleep == sorted(asleep) and asleep[-1] == 20
    assert "worker RSS" in report(result)
    assert json.loads(json.dumps(asdict(result)))["leads"] == 20  # what main writes
