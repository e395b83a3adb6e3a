"""Scoring: one event through the pure scoring code, microseconds per event, against baselines
timed in the same run.

    .venv/bin/python -m bench.scoring [--number 2000] [--repeats 7] [--results FILE]

``nurture.domain.scoring.score_event`` with the shipped rules (``config/``, loaded by
``nurture.config.config_loader.load_rules``), on a lead card that already holds 30 scored events
(the kept-entries window fills up, as in a running lead), cycling through a mix of behaviours
(plain page views, URL rules matched by wildcard, email clicks, unscored types). Each figure
is the median over ``--repeats`` of ``--number`` calls. Baselines, in the same run:

* ``LeadEvent.model_validate``: validating one incoming event (what every event costs at the
  edge and in the signal's decoding anyway);
* a dict lookup of the event type in the behaviour points: the floor of any scoring at all.

The ratios are score / baseline. Timings are never asserted: ``tests/test_bench_engine_smoke.py``
runs this at a tiny size and checks that it reports figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.saving import save_results
from nurture.config.config_loader import DEFAULT_CONFIG_DIR, load_rules
from nurture.domain.leads import LeadEvent
from nurture.domain.scoring import ScoreCard, score_event

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)

#: The events scored, cycled: what a website, email and form tools send.
EVENTS: tuple[dict[str, Any], ...] = (
    {"type": "page_view", "url": "https://nurture.example/features"},
    {"type": "page_view", "url": "https://nurture.example/blog/why-nurture"},
    {"type": "page_view", "url": "https://nurture.example/pricing"},
    {"type": "email_click", "url": "https://nurture.example/pricing?utm=mail"},
    {"type": "email_open"},
    {"type": "download", "url": "https://nurture.example/ebook"},
    {"type": "form_fill", "campaign": "search-brand"},
    {"type": "chat_started"},  # not in the rules: recorded, unscored
)


def time_per_call(
    call: Callable[[int], object], items: int, number: int, repeats: int
) -> list[float]:
    """Microseconds per call of ``call(i)`` for ``i`` cycling over ``items``, per repeat."""
    figures = []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(number):
            call(i % items)
        figures.append((time.perf_counter() - started) / number * 1e6)
    return figures


def run(number: int, repeats: int) -> dict[str, Any]:
    rules = load_rules(DEFAULT_CONFIG_DIR).scoring
    raw = [{"lead_id": "bench-lead", **event} for event in EVENTS]
    events = [LeadEvent.model_validate(item) for item in raw]
    card = ScoreCard()
    for n in range(30):  # a lead with some history: tallies and a full window of entries
        at = NOW - timedelta(days=30 - n)
        card, _ = score_event(card, events[n % len(events)], rules, at)
    behaviours = rules.behaviours
    types = [event.type for event in events]
    items = len(events)

    timed: dict[str, Callable[[int], object]] = {
        "score_event": lambda i: score_event(card, events[i], rules, NOW),
        "LeadEvent.model_validate": lambda i: LeadEvent.model_validate(raw[i]),
        "dict lookup": lambda i: behaviours.get(types[i]),
    }
    for call in timed.values():  # warm up
        time_per_call(call, items, max(1, number // 10), 1)
    per_repeat = {name: time_per_call(call, items, number, repeats) for name, call in timed.items()}
    median = {name: statistics.median(values) for name, values in per_repeat.items()}
    scoring = median["score_event"]
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "number": number,
        "repeats": repeats,
        "events": [event.type for event in events],
        "us_per_event": {name: round(value, 3) for name, value in median.items()},
        "all_repeats_us": {
            name: [round(v, 3) for v in values] for name, values in per_repeat.items()
        },
        "ratios": {
            "score_event / LeadEvent.model_validate": round(
                scoring / median["LeadEvent.model_validate"], 2
            ),
            "score_event / dict lookup": round(scoring / median["dict lookup"], 1),
        },
        "events_per_s_one_core": round(1e6 / scoring),
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        f"scoring, {results['date']}: median of {results['repeats']} x {results['number']} "
        f"calls; {results['machine']['cpus']} CPUs, load average "
        f"{results['machine']['load_average']}",
        "",
    ]
    for name, value in results["us_per_event"].items():
        lines.append(f"  {name:28} {value:9.2f} µs/event")
    lines.append("")
    for name, ratio in results["ratios"].items():
        lines.append(f"  {name:42} {ratio:7.2f}x")
    lines.append(f"  score_event alone: {results['events_per_s_one_core']:,} events/s on one core")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scoring", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--number", type=int, default=2000, help="calls per repeat; %(default)s")
    parser.add_argument("--repeats", type=int, default=7, help="default: %(default)s")
    parser.add_argument("--results", type=Path, help="JSON file (default: bench/results/...)")
    args = parser.parse_args(argv)
    results = run(args.number, args.repeats)
    print(report(results))
    path = save_results(results, args.results, f"scoring-{results['date']}.json")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    from nurture.runtime.process import exit_now

    exit_now(main(sys.argv[1:]))
