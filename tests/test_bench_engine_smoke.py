"""The engine and scoring benchmarks at a tiny size: each runs end to end and reports figures
(behaviour only: timings are the benchmarks' business, never a test's)."""

from __future__ import annotations

import json
from pathlib import Path

from activities import records
from bench import cached_objects, engine_throughput, instance_cost, scoring


def test_engine_throughput_reports_both_workflows_and_handoffs(tmp_path: Path) -> None:
    results_file = tmp_path / "engine.json"
    argv = ["--leads", "8", "--events", "2", "--in-flight", "4", "--repeats", "1"]
    argv += ["--warmup-leads", "2", "--handoff-leads", "3", "--handoff-in-flight", "3"]
    argv += ["--sample-stacks", "--settle", "1"]

    assert engine_throughput.main([*argv, "--results", str(results_file)]) == 0

    results = json.loads(results_file.read_text())
    (variant,) = results["variants"]
    assert {(run["population"], run["kind"]) for run in variant["runs"]} == {
        ("new", "counting"),
        ("new", "lead"),
        ("running", "counting"),
        ("running", "lead"),
    }
    for run in variant["runs"]:
        assert run["events"] == 16
        assert run["accepted_per_s"] > 0 and run["processed_per_s"] > 0
        assert run["p99_ms"] >= run["p50_ms"] > 0
    for population in ("new", "running"):
        figures = variant["populations"][population]
        assert figures["ratio_accepted"] > 0 and figures["ratio_processed"] > 0
    assert isinstance(variant["lead_stacks"], list)  # the sampler ran (few samples at this size)
    assert variant["settled_s"] is not None  # the hand-offs waited for the leads' own work
    handoff = variant["handoff"]
    assert (handoff["notified"], handoff["missing"]) == (3, 0)
    assert handoff["p99_ms"] >= handoff["p50_ms"] > 0
    whole = variant["gc"]["whole_variant"]  # the collector watched: the hand-off tail's cause
    assert whole["tracked_objects"] > 0 and whole["rss_mib"] > 0
    assert whole["full_collections"] >= variant["gc"]["during_handoffs"]["full_collections"]


def test_the_write_ablation_runs_the_local_activity_without_its_write() -> None:
    original = records.write_batches
    with engine_throughput.ablated(["read-model-write"]):
        assert records.write_batches is not original
    assert records.write_batches is original


def test_engine_throughput_measures_without_the_sandbox_the_read_model_and_the_codec(
    tmp_path: Path,
) -> None:
    results_file = tmp_path / "ablated.json"
    argv = ["--leads", "4", "--events", "2", "--in-flight", "4", "--repeats", "1"]
    argv += ["--warmup-leads", "0", "--handoff-leads", "2", "--population", "running"]
    argv += ["--ablate", "sandbox", "--ablate", "read-model", "--results", str(results_file)]
    argv += ["--codec", "both"]

    assert engine_throughput.main(argv) == 0

    results = json.loads(results_file.read_text())
    assert results["ablated"] == ["sandbox", "read-model"]
    plain, encrypted = results["variants"]
    assert (plain["codec"], encrypted["codec"]) == ("plain", "encrypted")
    for variant in (plain, encrypted):
        assert set(variant["populations"]) == {"running"}
        assert variant["handoff"]["notified"] == 2  # leads still work without the two parts
    (cost,) = engine_throughput.codec_cost(results["variants"])
    assert cost.startswith("codec cost (defaults, encrypted, running leads)")
    # nothing left patched after the run
    assert engine_throughput.temporalio.workflow.execute_local_activity.__name__ == (
        "execute_local_activity"
    )


def test_engine_throughput_takes_worker_options() -> None:
    args = engine_throughput.parse_args(
        ["--worker-option", "workflow_pollers=3", "--worker-option", "max_cached_workflows=50"]
    )
    options = dict(args.worker_option)
    assert options == {"workflow_pollers": 3, "max_cached_workflows": 50}
    kwargs = engine_throughput.worker_kwargs(options)
    assert set(kwargs) == {"workflow_task_poller_behavior"}  # the cache is a WorkerOptions field


def test_scoring_reports_microseconds_and_ratios(tmp_path: Path) -> None:
    results_file = tmp_path / "scoring.json"

    assert scoring.main(["--number", "50", "--repeats", "2", "--results", str(results_file)]) == 0

    results = json.loads(results_file.read_text())
    assert set(results["us_per_event"]) == {
        "score_event",
        "LeadEvent.model_validate",
        "dict lookup",
    }
    assert all(value > 0 for value in results["us_per_event"].values())
    assert all(ratio > 0 for ratio in results["ratios"].values())


def test_instance_cost_reports_both_modules() -> None:
    medians = instance_cost.main(["--runs", "3"])
    assert set(medians) == {"counting", "lead"} and all(ms > 0 for ms in medians.values())


def test_cached_objects_counts_what_each_idle_workflow_adds(tmp_path: Path) -> None:
    results = cached_objects.main(["--leads", "20", "--results", str(tmp_path / "objects.json")])

    lead, counting = results["lead"], results["counting"]
    # a cached lead holds its sandboxed module's functions and its pending coroutines
    assert lead["by_type"]["builtins.function"] > 0 and lead["by_type"]["builtins.coroutine"] > 0
    assert lead["objects_each"] > counting["objects_each"] > 0
    assert results["process_objects_after"] > results["process_objects"]
    assert json.loads((tmp_path / "objects.json").read_text())["ratio"] == results["ratio"]
