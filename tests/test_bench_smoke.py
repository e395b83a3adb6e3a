"""The reports benchmark at a tiny size, on SQLite: it runs end to end and every report finds
something to say about the synthetic population (behaviour only: timings are the benchmark's
business, never a test's)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import reports_at_scale
from nurture.reports import REPORTS


def test_benchmark_runs_every_report_on_a_small_population(tmp_path: Path) -> None:
    results_file = tmp_path / "results.json"
    argv = ["--leads", "2000", "--events", "20000", "--database", "sqlite", "--runs", "1"]

    assert reports_at_scale.main([*argv, "--results", str(results_file)]) == 0

    results = json.loads(results_file.read_text())
    sqlite = results["databases"]["sqlite"]
    assert set(results["databases"]) == {"sqlite"}
    assert sqlite["load"]["rows_by_table"]["leadevent"] == 20000
    assert sqlite["load"]["rows_by_table"]["lead"] == 2000
    assert {"funnel", "sla", "returns", "influence", "cost"} <= set(REPORTS)
    timed = {(row["report"], row["period"]) for row in sqlite["reports"]}
    assert timed == {(name, period) for name in REPORTS for period in ("all", "month")}
    for row in sqlite["reports"]:
        assert row["tables"], row["report"]
        for table, rows in row["tables"].items():
            assert rows > 0, f"{row['report']} ({row['period']}): table {table} is empty"
        assert row["warm"] > 0 and row["ratio"] > 0
    assert sqlite["baseline"]["events"]["result"][0] == 20000
