"""Scale-out: one worker process against two, on one dev server, in the same run.

    .venv/bin/python -m bench.scale_out [--leads 300 --events 4 --repeats 2 --handoff-leads 60]

A dev server on its SQLite file (as ``nurture up`` runs it), the SendGrid stand-in, a read model
on the local PostgreSQL (several workers write it at once, as in production) and ``worker.py``
processes as shipped (the shipped rules, each cadence's first touch a day away). Variants
alternate, one worker then two, ``--repeats`` times, each with fresh leads: ``--leads`` new
leads get ``--events`` events each by signal-with-start, ``--in-flight`` leads at a time;
processed events/s is until every lead is idle (``describe``: no task pending). Then
``--handoff-leads`` leads ask for a call, ``--handoff-in-flight`` at a time: latency to the
rep's email. Measured for every process: CPU seconds (``/proc``: user + system) per event of
each worker, of the dev server and of this process (the client), so the figure for N machines
can be projected (``docs/operations.md``, "Scaling out"). Timings are never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.engine_throughput import drain, machine, percentile, send_population
from bench.idle_scale import free_port, share_data_keys, sleeping_rules, start_worker
from bench.reports_at_scale import DEFAULT_ADMIN_URL, postgresql_database
from bench.saving import save_results
from nurture.cli.embedded import EmbeddedOptions, start_dev_server, stop_process, wait_for_server
from nurture.client.starting import send_event
from nurture.domain.leads import LeadEvent, workflow_id_for
from nurture.runtime.process import exit_now
from nurture.standins.sendgrid_standin import SendGridStandIn

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
ADMIN_URL = os.environ.get("NURTURE_TEST_POSTGRES", DEFAULT_ADMIN_URL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def workers(
    count: int, tmp: Path, config: Path, address: str, db_url: str, mail: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    log = tmp / "worker.log"
    ready_before = log.read_text().count("worker ready") if log.exists() else 0
    started = [start_worker(tmp, config, address, db_url, mail) for _ in range(count)]
    try:
        deadline = time.monotonic() + 120
        while log.read_text().count("worker ready") < ready_before + count:
            if time.monotonic() > deadline or any(w.poll() is not None for w in started):
                raise RuntimeError(log.read_text()[-3000:])
            time.sleep(0.2)
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(30)


async def handoffs(
    client: Client, standin: SendGridStandIn, leads: int, in_flight: int
) -> dict[str, Any]:
    prefix = f"h-{uuid.uuid4().hex[:6]}"
    pending = [f"{prefix}-{n}" for n in range(leads)]
    latencies: list[float] = []

    async def one() -> None:
        while pending:
            lead = pending.pop()
            await send_event(client, LeadEvent(lead_id=lead, type="requested_call"))
            accepted = datetime.now(UTC)
            deadline = time.monotonic() + 60
            while not (found := standin.messages_with(lead_id=lead, category="handoff")):
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.005)
            latencies.append((found[0].received_at - accepted).total_seconds() * 1000)

    await asyncio.gather(*(one() for _ in range(in_flight)))
    return {
        "notified": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies, default=0.0), 1),
    }


@dataclass(frozen=True)
class DevEngine:
    """A dev server on its SQLite file (as ``nurture up`` runs it), a read model on the local
    PostgreSQL and the SendGrid stand-in, for ``worker.py`` processes to join."""

    tmp: Path
    config: Path
    address: str
    db_url: str
    client: Client
    standin: SendGridStandIn
    server_pid: int

    def workers(self, count: int) -> AbstractContextManager[list[subprocess.Popen[bytes]]]:
        return workers(count, self.tmp, self.config, self.address, self.db_url, self.standin.url)


@asynccontextmanager
async def dev_engine(prefix: str, rules: Callable[[Path], Path]) -> AsyncIterator[DevEngine]:
    """A :class:`DevEngine` with the rules ``rules`` writes into its directory."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp_dir,
        postgresql_database(ADMIN_URL, False) as db,
        SendGridStandIn() as standin,
    ):
        tmp = Path(tmp_dir)
        config = rules(tmp)
        share_data_keys(db.url)
        port = free_port()
        options = EmbeddedOptions(
            data_dir=tmp / "temporal",
            config_dir=config,
            templates_dir=ROOT / "templates",
            port=port,
            headless=True,
        )
        server = start_dev_server(options)
        try:
            address = f"127.0.0.1:{port}"
            client = await wait_for_server(address, server)
            yield DevEngine(tmp, config, address, db.url, client, standin, server.pid)
        finally:
            stop_process(server)


async def measure(args: argparse.Namespace, count: int, engine: DevEngine) -> dict[str, Any]:
    client, standin, server_pid = engine.client, engine.standin, engine.server_pid
    with engine.workers(count) as running:
        pids = [w.pid for w in running]
        lead_ids = [f"s{count}-{uuid.uuid4().hex[:6]}-{n}" for n in range(args.leads)]
        before = {pid: cpu_seconds(pid) for pid in [*pids, server_pid, os.getpid()]}
        send_s, _ = await send_population(
            lambda event: send_event(client, event), lead_ids, args.events, args.in_flight
        )
        drain_s, _ = await drain(client, [workflow_id_for(i) for i in lead_ids], args.in_flight)
        drained = {pid: cpu_seconds(pid) for pid in before}  # also the hand-offs' start
        used = {pid: drained[pid] - before[pid] for pid in before}
        events = args.leads * args.events
        handoff = await handoffs(client, standin, args.handoff_leads, args.handoff_in_flight)
        notified = max(handoff["notified"], 1)
        handoff |= {  # where a hand-off's time goes: CPU per hand-off of each side
            "worker_cpu_ms_each": round(
                sum(cpu_seconds(p) - drained[p] for p in pids) * 1000 / notified, 1
            ),
            "server_cpu_ms_each": round(
                (cpu_seconds(server_pid) - drained[server_pid]) * 1000 / notified, 1
            ),
        }
    return {
        "workers": count,
        "events": events,
        "processed_per_s": round(events / (send_s + drain_s), 1),
        "accepted_per_s": round(events / send_s, 1),
        "worker_cpu_ms_per_event": round(sum(used[p] for p in pids) * 1000 / events, 2),
        "each_worker_cpu_ms_per_event": [round(used[p] * 1000 / events, 2) for p in pids],
        "server_cpu_ms_per_event": round(used[server_pid] * 1000 / events, 2),
        "client_cpu_ms_per_event": round(used[os.getpid()] * 1000 / events, 2),
        "handoff": handoff,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    async with dev_engine("nurture-scale-", sleeping_rules) as engine:
        for repeat in range(args.repeats):
            for count in args.workers:
                result = await measure(args, count, engine)
                print(f"repeat {repeat + 1}: {result}", flush=True)
                runs.append(result)
    return {"runs": runs, "by_workers": summary(runs, args.workers)}


def summary(runs: Sequence[dict[str, Any]], counts: Sequence[int]) -> dict[int, dict[str, float]]:
    keys = (
        "processed_per_s",
        "worker_cpu_ms_per_event",
        "server_cpu_ms_per_event",
        "client_cpu_ms_per_event",
    )
    out: dict[int, dict[str, float]] = {}
    for count in counts:
        mine = [r for r in runs if r["workers"] == count]
        out[count] = {k: round(statistics.median(r[k] for r in mine), 2) for k in keys}
        out[count]["handoff_p99_ms"] = statistics.median(r["handoff"]["p99_ms"] for r in mine)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--events", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--handoff-leads", type=int, default=60)
    parser.add_argument("--handoff-in-flight", type=int, default=10)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker processes in each variant, in the order run (default: 1 2); "
        "--workers 1 measures one worker process alone",
    )
    parser.add_argument("--results", type=Path)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    results["machine"] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **machine()}
    for count, figures in results["by_workers"].items():
        print(f"{count} worker(s): {figures}", flush=True)
    by_workers = results["by_workers"]
    if 1 in by_workers and 2 in by_workers:
        ratio = by_workers[2]["processed_per_s"] / by_workers[1]["processed_per_s"]
        print(f"processed, two workers / one: {ratio:.2f}")
    out = save_results(results, args.results, f"scale-out-{datetime.now(UTC):%Y-%m-%d}.json")
    print(f"results: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    exit_now(main())
