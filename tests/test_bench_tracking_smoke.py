"""The tracking benchmark at a tiny size: the service, a worker and a dev server in their own
processes take every page view of the three kinds, and the cost of the anonymous visitors
kept is measured on SQLite and PostgreSQL (behaviour only: timings are the benchmark's
business, never a test's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import tracking_throughput


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_tracking_benchmark_reports_every_kind_and_the_cost_of_anonymous_visitors(
    tmp_path: Path, database: str
) -> None:
    results_file = tmp_path / "tracking.json"
    argv = ["--events", "12", "--visits", "3", "--concurrency", "2", "--rounds", "2"]
    argv += ["--leads", "3", "--visitors", "8", "--database", database]

    assert tracking_throughput.main([*argv, "--results", str(results_file)]) == 0

    results = json.loads(results_file.read_text())
    assert [(p["kind"], p["round"]) for p in results["phases"]] == [
        ("api", 1),
        ("identified", 1),
        ("anonymous", 1),
        ("identified", 2),  # the order turns each round
        ("anonymous", 2),
        ("api", 2),
    ]
    for phase in results["phases"]:
        assert phase["events"] == phase["accepted"] == 12, phase  # every page view taken
        assert phase["accepted_per_s"] > 0 and phase["p99_ms"] >= phase["p50_ms"] > 0
        assert set(phase["cpu_ms_per_event"]) == {"service", "worker", "temporal"}
        assert phase["cpu_ms_per_event"]["service"] > 0  # the service did the work
    assert set(results["ratios"]) == {
        "identified_accepted",
        "anonymous_accepted",
        "identified_processed",
        "identified_service_cpu",
        "anonymous_service_cpu",
    }
    assert all(ratio > 0 for ratio in results["ratios"].values())
    cost = results["anonymous_cost"]
    assert cost["rows_kept"] == {"visitor": 8, "visitorevent": 24}
    assert cost["throughput"]["accepted"] == 24
    assert cost["grown"]["tracking_tables_bytes"] > 0
    assert cost["bytes_per_event"]["tracking_tables_bytes"] == pytest.approx(
        cost["grown"]["tracking_tables_bytes"] / 24, abs=0.1
    )
    assert results["database"]["kind"] == database
