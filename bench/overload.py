"""Overload: a new lead's time to its first stage, and a hand-off's latency, while a timer
storm runs, against the same on a calm engine in the same run.

    .venv/bin/python -m bench.overload [--storm 1000 --delay 150 --probes 30]

A dev server on its SQLite file (as ``nurture up`` runs it), the SendGrid stand-in, a read model
on the local PostgreSQL and one ``worker.py`` as shipped, with the shipped rules but the send
window open all day and every cadence's first touch ``--delay`` seconds after enrolment.

1. ``--storm`` leads are started (a profile each, with an address and consent), ``--in-flight``
   at a time, and the run waits until every one has its stage (its first workflow task ran:
   it is enrolled). Their first touches come due ``--delay`` seconds after enrolment.
2. **Calm**, before the first touch is due: ``--probes`` new leads are started, and
   ``--probes`` of the sleeping leads ask for a call, ``--probe-in-flight`` at a time: each new
   lead's time from the start request to its ``LeadStage`` search attribute (``describe``:
   what an operator sees in the Temporal UI), each hand-off's time from the event to the rep's
   email at the stand-in.
3. The worker stops until every touch is due (a worker outage, or the night a deploy went
   wrong), then starts again with an empty cache: every lead's timer is a workflow task
   waiting on the queue, each a replay of the lead's history, an email activity, the
   activity's result and a read-model write. (Touches due at the rate leads were enrolled
   never storm: one worker sends them as they come.)
4. **Storm**: as soon as the worker is back, the same probes again; then how long until every
   touch due was sent.

Timings are never asserted: the ratios storm / calm say how much of the sales-critical path
the storm takes away.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.engine_throughput import machine, percentile
from bench.idle_scale import first_touch_rules
from bench.saving import save_results
from bench.scale_out import dev_engine
from nurture.client.starting import send_event, send_profile
from nurture.contract.names import LEAD_WORKFLOW, STAGE
from nurture.domain.leads import ConsentGiven, LeadEvent, LeadProfile, workflow_id_for
from nurture.runtime.process import exit_now
from nurture.standins.sendgrid_standin import SendGridStandIn

POLL_S = 0.05
PROBE_TIMEOUT_S = 120.0


def profile_of(lead_id: str, n: int) -> LeadProfile:
    return LeadProfile(
        lead_id=lead_id,
        email=f"{lead_id}@corp.example",
        company_size=[20, 200, 2000][n % 3],
        region=["EMEA", "AMER", "APAC"][n % 3],
        campaign=f"campaign-{n % 8}",
        consent=ConsentGiven(source="form"),
    )


async def each(items: Sequence[Any], in_flight: int, do: Callable[[Any], Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(in_flight)

    async def one(item: Any) -> None:
        async with gate:
            await do(item)

    await asyncio.gather(*(one(item) for item in items))


async def until(found: Callable[[], Awaitable[bool]]) -> bool:
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while not await found():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


async def probe(
    client: Client,
    standin: SendGridStandIn,
    sleeping: Sequence[str],
    count: int,
    in_flight: int,
    ahead: bool = True,
) -> dict[str, Any]:
    """Start ``count`` new leads and hand ``count`` of ``sleeping`` to sales, ``in_flight`` of
    each kind at a time: ms to each new lead's stage and to each rep's email. ``ahead``: each
    call request puts its lead ahead of nurture work, as the edge sends it."""
    to_stage: list[float] = []
    to_rep: list[float] = []
    prefix = uuid.uuid4().hex[:6]

    async def new_lead(n: int) -> None:
        profile = profile_of(f"probe-{prefix}-{n}", n)
        handle = client.get_workflow_handle(workflow_id_for(profile.lead_id))
        began = time.perf_counter()
        await send_profile(client, profile)

        async def staged() -> bool:
            return (await handle.describe()).typed_search_attributes.get(STAGE) is not None

        if await until(staged):
            to_stage.append((time.perf_counter() - began) * 1000)

    async def handoff(lead_id: str) -> None:
        began = time.perf_counter()
        call = LeadEvent(lead_id=lead_id, type="requested_call")
        await send_event(client, call, sales_ready=ahead)

        async def notified() -> bool:
            return bool(standin.messages_with(lead_id=lead_id, category="handoff"))

        if await until(notified):
            to_rep.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(
        each(range(count), in_flight, new_lead), each(sleeping[:count], in_flight, handoff)
    )
    return {
        "new_leads": count,
        "staged": len(to_stage),
        "stage_p50_ms": round(percentile(to_stage, 50), 1),
        "stage_p99_ms": round(percentile(to_stage, 99), 1),
        "handoffs": count,
        "notified": len(to_rep),
        "handoff_p50_ms": round(percentile(to_rep, 50), 1),
        "handoff_p99_ms": round(percentile(to_rep, 99), 1),
    }


def sent_twice(standin: SendGridStandIn) -> int:
    """Touches the stand-in accepted more than once (by their idempotency key)."""
    keys = [
        m.custom_args.get("nurture_key")
        for m in standin.messages
        if m.custom_args.get("category") == "touch"
    ]
    return len(keys) - len(set(keys))


def touches(standin: SendGridStandIn) -> dict[str, datetime]:
    """The first touch each lead was sent: lead id -> when the stand-in accepted it."""
    sent: dict[str, datetime] = {}
    for message in standin.messages:
        lead = message.custom_args.get("lead_id")
        if lead and message.custom_args.get("category") == "touch":
            sent.setdefault(lead, message.received_at)
    return sent


async def run(args: argparse.Namespace) -> dict[str, Any]:
    def rules(tmp: Path) -> Path:  # the send window open all day: the touches storm at once
        return first_touch_rules(tmp, f"{args.delay}s", send_window="anytime")

    async with dev_engine("nurture-overload-", rules) as engine:
        return await storm(args, engine.client, engine.standin, lambda: engine.workers(1))


async def storm(
    args: argparse.Namespace,
    client: Client,
    standin: SendGridStandIn,
    worker: Callable[[], AbstractContextManager[object]],
) -> dict[str, Any]:
    lead_ids = [f"storm-{n:06d}" for n in range(args.storm)]
    # Handed-off leads leave the cadence: each phase takes its own sleeping leads.
    calm_leads, storm_leads = lead_ids[-args.probes :], lead_ids[-2 * args.probes : -args.probes]
    with worker():
        began = time.monotonic()
        await each(
            range(args.storm),
            args.in_flight,
            lambda n: send_profile(client, profile_of(lead_ids[n], n)),
        )
        start_s = time.monotonic() - began
        print(f"{args.storm} storm leads started in {start_s:.1f} s", flush=True)
        unstaged = f"WorkflowType = '{LEAD_WORKFLOW}' AND LeadStage IS NULL"
        while (await client.count_workflows(unstaged)).count:  # every storm lead enrolled
            await asyncio.sleep(1)
        enrolled_s = time.monotonic() - began
        print(f"every storm lead enrolled after {enrolled_s:.1f} s", flush=True)
        calm = await probe(
            client, standin, calm_leads, args.probes, args.probe_in_flight, not args.in_line
        )
        print(f"calm: {calm}", flush=True)
        sent_early = len(touches(standin))
    if time.monotonic() - began >= args.delay:
        print("warning: touches came due before the worker stopped; raise --delay", flush=True)
    all_due = began + enrolled_s + args.delay + 2
    print(f"worker stopped; every touch due in {all_due - time.monotonic():.0f} s", flush=True)
    await asyncio.sleep(max(0.0, all_due - time.monotonic()))

    with worker():
        storm_began = time.monotonic()
        stormy = await probe(
            client, standin, storm_leads, args.probes, args.probe_in_flight, not args.in_line
        )
        print(f"storm: {stormy}", flush=True)
        expected = set(lead_ids) - set(calm_leads) - set(storm_leads)
        deadline = time.monotonic() + 2 * PROBE_TIMEOUT_S
        while not expected <= touches(standin).keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        storm_s = time.monotonic() - storm_began
        sent = len(expected & touches(standin).keys())
    return {
        "call_requests_put_their_lead_ahead": not args.in_line,
        "storm": {
            "leads": args.storm,
            "start_s": round(start_s, 1),
            "enrolled_s": round(enrolled_s, 1),
            "touches_sent_before_the_stop": sent_early,
            "touches_due_at_restart": len(expected),
            "touches_sent": sent,
            "touches_sent_twice": sent_twice(standin),
            "all_sent_after_s": round(storm_s, 1),
            "touches_per_s": round(sent / storm_s, 1),
        },
        "calm": calm,
        "during_storm": stormy,
        "ratios": {
            key: round(stormy[key] / calm[key], 2) if calm[key] else None
            for key in ("stage_p50_ms", "stage_p99_ms", "handoff_p50_ms", "handoff_p99_ms")
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storm", type=int, default=1000, help="leads whose touches storm")
    parser.add_argument("--delay", type=int, default=150, help="s from enrolment to first touch")
    parser.add_argument("--in-flight", type=int, default=64, help="storm leads started at once")
    parser.add_argument("--probes", type=int, default=30, help="new leads and hand-offs, each")
    parser.add_argument("--probe-in-flight", type=int, default=5)
    parser.add_argument(
        "--in-line",
        action="store_true",
        help="call requests do not put their lead ahead (Temporal's default for its tasks)",
    )
    parser.add_argument("--results", type=Path)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    results["machine"] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **machine()}
    storm_figures, ratios = results["storm"], results["ratios"]
    print(
        f"storm: {storm_figures['touches_sent']}/{storm_figures['touches_due_at_restart']} "
        f"touches due at the restart sent in {storm_figures['all_sent_after_s']} s "
        f"({storm_figures['touches_per_s']}/s; {storm_figures['touches_sent_twice']} sent twice)",
        flush=True,
    )
    for phase in ("calm", "during_storm"):
        f = results[phase]
        print(
            f"{phase:>12}: first stage p50/p99 {f['stage_p50_ms']}/{f['stage_p99_ms']} ms "
            f"({f['staged']}/{f['new_leads']}), hand-off p50/p99 {f['handoff_p50_ms']}/"
            f"{f['handoff_p99_ms']} ms ({f['notified']}/{f['handoffs']})",
            flush=True,
        )
    print(f"storm / calm: {ratios}", flush=True)
    out = save_results(results, args.results, f"overload-{datetime.now(UTC):%Y-%m-%d}.json")
    print(f"results: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    exit_now(main())
