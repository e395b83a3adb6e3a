"""What a lead held in a worker's cache costs the garbage collector: the GC-tracked objects
one idle cached lead adds to the worker process, by type, against one idle counting workflow,
in the same run, and how long a full collection of the whole process takes.

    .venv/bin/python -m bench.cached_objects [--leads 400 --events 1]

A full collection walks every tracked object and stops every lead on the worker while it runs
(2-3 s with 2,000 leads cached after 10,000 leads, ``bench/README.md``): the objects per cached
lead times ``max_cached_workflows``, plus what the process holds anyway, is what it walks.
Starts ``--leads`` leads and as many counting workflows (each by its first of ``--events``
events) through ``build_worker``'s worker and the counting worker of ``bench.engine_throughput``,
waits until all are idle, and counts ``gc.get_objects()`` after each population. The cache
(2,000 by default) must hold every workflow started, the warm-up's too: ``--leads`` stays at
or under 990.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.collections_watch import FullCollections
from bench.engine_throughput import dev_server, engines
from bench.saving import save_results
from nurture.config.config_loader import DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR
from nurture.config.rules_source import RulesSource
from nurture.config.settings import WorkerOptions
from nurture.standins.sendgrid_standin import SendGridStandIn

KINDS = ("lead", "counting")
CACHE = WorkerOptions.max_cached_workflows
"""The worker's default cache: every workflow started must stay in it."""
WARMUP = 10
"""Workflows of each kind started before counting (imports, converters, pools: made once)."""
MOST_LEADS = (CACHE - len(KINDS) * WARMUP) // len(KINDS)


def tracked_by_type() -> collections.Counter[str]:
    """Every object the collector tracks, after a full collection, counted by type."""
    gc.collect()
    return collections.Counter(
        f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.get_objects()
    )


def full_collection_ms(runs: int = 3) -> float:
    """The median pause of a full collection of this process, timed as the throughput
    benchmark times the worker's (``FullCollections``)."""
    with FullCollections() as collections_seen:
        for _ in range(runs):
            gc.collect()
    return statistics.median(collections_seen.pauses_ms)


async def measure(leads: int, events: int, in_flight: int) -> dict[str, Any]:
    source = RulesSource(DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR, 1.0)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "leads": leads,
        "events_per_lead": events,
    }
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, SendGridStandIn() as standin:
        database_url = f"sqlite:///{Path(tmp) / 'nurture.db'}"
        async with (
            dev_server(database_url) as clients,
            engines(clients["encrypted"], standin, database_url, source, {}) as engine,
        ):
            for kind in KINDS:
                await engine.run_population(kind, 0, WARMUP, 1, WARMUP)
            before = tracked_by_type()
            results["process_objects"] = sum(before.values())
            results["full_collection_ms_before"] = round(full_collection_ms(), 1)
            for kind in KINDS:
                await engine.run_population(kind, 1, leads, events, in_flight)
                after = tracked_by_type()
                added = after - before
                results[kind] = {
                    "objects_each": round(sum(added.values()) / leads, 1),
                    "by_type": {name: round(n / leads, 1) for name, n in added.most_common(25)},
                }
                before = after
            results["process_objects_after"] = sum(before.values())
            results["full_collection_ms_after"] = round(full_collection_ms(), 1)
    lead, counting = results["lead"]["objects_each"], results["counting"]["objects_each"]
    results["ratio"] = round(lead / counting, 2)
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        f"cached objects, {results['date']}: {results['leads']} leads and as many counting "
        f"workflows, {results['events_per_lead']} events each, all idle in the cache",
        f"process before: {results['process_objects']:,} objects, full collection "
        f"{results['full_collection_ms_before']} ms; after: "
        f"{results['process_objects_after']:,}, {results['full_collection_ms_after']} ms",
    ]
    for kind in KINDS:
        figures = results[kind]
        lines.append(f"{kind}: {figures['objects_each']} objects each")
        lines += [f"  {n:7.1f}  {name}" for name, n in list(figures["by_type"].items())[:12]]
    lines.append(f"ratio lead / counting: {results['ratio']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=400, help="default: %(default)s")
    parser.add_argument("--events", type=int, default=1, help="per lead; default: %(default)s")
    parser.add_argument("--in-flight", type=int, default=50, help="default: %(default)s")
    parser.add_argument("--results", type=Path, help="default: bench/results/...")
    args = parser.parse_args(argv)
    if not 0 < args.leads <= MOST_LEADS:
        parser.error(f"--leads: 1 to {MOST_LEADS} (every workflow started stays in the cache)")
    results = asyncio.run(measure(args.leads, args.events, args.in_flight))
    print(report(results))
    path = save_results(results, args.results, f"cached-objects-{results['date']}.json")
    print(f"\nresults: {path}")
    return results


if __name__ == "__main__":
    from nurture.runtime.logging import configure_logging
    from nurture.runtime.process import exit_now

    configure_logging("WARNING")
    main(sys.argv[1:])
    exit_now(0)
