"""Engine throughput and handoff latency: events/s through the real ``LeadWorkflow`` against a
workflow that only counts signals, measured in the same run on the same dev server.

    .venv/bin/python -m bench.engine_throughput [--leads 500 --events 4 --in-flight 50]
        [--repeats 3] [--handoff-leads 200 --handoff-in-flight 10] [--settle SECONDS]
        [--worker-option NAME=VALUE ...] [--sweep] [--database-url URL] [--sample-stacks]
        [--codec on|off|both] [--results FILE]

One process: a dev server in memory (``WorkflowEnvironment.start_local`` with the installed
``temporal`` binary and the lead search attributes), the SendGrid stand-in on loopback, a SQLite
read model in a temporary directory, and two workers: the lead worker exactly as
``worker.build_worker`` wires it (shipped ``config/`` and ``templates/``) and a worker with the
same options running ``bench.counting_workflow.CountingWorkflow``.

Throughput: the same population for both (``--leads`` x ``--events``; each lead's events in
order, ``--in-flight`` leads being sent at once), every event a signal-with-start
(``nurture.client.starting.send_event`` for leads). Runs alternate counting, lead, counting, lead...
with fresh lead ids each time; each run reports *accepted* events/s (the send phase: every
signal acknowledged by the server), *processed* events/s (until every workflow has applied
every event, checked by query) and the per-event latency of the signal-with-start call
(p50/p99). Medians over ``--repeats``; the ratio is lead / counting (target >= 0.8).

Handoff latency: ``--handoff-leads`` new leads each send ``requested_call`` (instant qualify);
from the signal returning to the stand-in accepting the rep's handoff email (its
``received_at``): p50/p99 (target p99 < 1 s on the dev server). They start as soon as the
last population is idle; the populations' own later work (a cadence's first touch comes 10
minutes after enrolment) can then fall in them, as it did at 10,000 leads: ``--settle 660``
waits it out first.

``--codec``: the clients and workers encrypt payloads as the engine does (``on``, the default:
``nurture.privacy``, keys in the bench's database), or not (``off``), or ``both``: every variant
measured plain and encrypted on the same server, and the report gives the codec's cost as the
encrypted lead throughput over the plain one.

``--worker-option`` applies to both workers: ``max_cached_workflows``, ``activity_threads``
(``WorkerOptions`` fields), ``workflow_pollers``/``activity_pollers`` (poller maxima),
``workflow_threads`` (the threads that run workflow activations; the SDK's default is one per
workflow-task slot), or any integer ``temporalio.worker.Worker`` argument
(``max_concurrent_workflow_tasks``, ``max_concurrent_local_activities``...). ``--sweep``
measures a set of variants one after the other on the same server. ``--sample-stacks`` samples
the process's thread stacks during the lead runs (``bench/sampling.py``) and reports where busy
threads were. Timings are never asserted: ``tests/test_bench_engine_smoke.py`` runs this at a
tiny size and checks that it reports figures.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import temporalio.workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner, Worker

import worker as worker_module
from activities import records
from bench.collections_watch import FullCollections
from bench.counting_workflow import CountingWorkflow
from bench.sampling import StackSampler, top
from bench.saving import save_results
from nurture.access.consent import LinkSigner
from nurture.client.starting import send_event
from nurture.client.temporal import installed_binary
from nurture.config.config_loader import DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR
from nurture.config.rules_source import RulesSource
from nurture.config.settings import MailerSettings, WorkerOptions
from nurture.contract.ledger import RECORD_FACTS
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.domain.leads import LeadEvent, workflow_id_for
from nurture.privacy.converter import encrypted_converter
from nurture.privacy.key_store import KeyStore
from nurture.privacy.master_keys import MasterKeys, generate, parse
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from worker import build_worker
from workflows.lead import LeadWorkflow

BENCH_SECRET = "bench-secret-0123456789abcdef"

#: What leads do in the throughput runs, cycled per lead: scored behaviours, URL rules
#: (fnmatch), a campaign on the first event. Four events stay under the sales-ready threshold
#: (no handoff: that is measured on its own).
EVENT_MIX: tuple[dict[str, Any], ...] = (
    {"type": "form_fill", "campaign": "search-brand", "url": "https://nurture.example/contact"},
    {"type": "page_view", "url": "https://nurture.example/blog/why-nurture"},
    {"type": "page_view", "url": "https://nurture.example/pricing"},
    {"type": "download", "url": "https://nurture.example/ebook"},
    {"type": "email_click", "url": "https://nurture.example/pricing?utm=mail"},
    {"type": "page_view", "url": "https://nurture.example/features"},
    {"type": "webinar_registered"},
    {"type": "email_open"},
)

#: Variants ``--sweep`` measures (each on top of ``--worker-option``).
SWEEP: tuple[tuple[str, dict[str, int]], ...] = (
    ("defaults", {}),
    ("max_cached_workflows=100", {"max_cached_workflows": 100}),
    ("max_concurrent_workflow_tasks=20", {"max_concurrent_workflow_tasks": 20}),
    ("max_concurrent_workflow_tasks=200", {"max_concurrent_workflow_tasks": 200}),
    ("workflow_pollers=2", {"workflow_pollers": 2}),
    ("workflow_pollers=20", {"workflow_pollers": 20}),
    ("activity_threads=8", {"activity_threads": 8}),
)
#: What ``--sample-stacks`` reports: functions of these packages (the project's and the SDK's).
STACK_PARTS = ("workflows/", "nurture/", "activities/", "temporalio/worker/", "sqlalchemy/engine")
#: WorkerOptions fields (``gc_freeze``: 0 or 1).
OPTION_FIELDS = ("max_cached_workflows", "activity_threads", "gc_young_threshold", "gc_freeze")
POPULATIONS = ("new", "running")
ABLATIONS = ("sandbox", "read-model", "read-model-write")


# --- figures ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class PopulationRun:
    kind: str  # "counting" or "lead"
    population: str  # "new" (every event's workflow started by it or just before) or "running"
    repeat: int
    events: int
    send_s: float
    drain_s: float
    ask_s: float  # one describe of every workflow: the cost of checking they are idle
    latencies_ms: list[float] = field(repr=False)
    history: dict[str, float] | None = None  # running leads: history growth per event

    @property
    def accepted_per_s(self) -> float:
        return self.events / self.send_s

    @property
    def processed_per_s(self) -> float:
        return self.events / (self.send_s + self.drain_s)

    def summary(self) -> dict[str, float | int | str]:
        return {
            "kind": self.kind,
            "population": self.population,
            "repeat": self.repeat,
            "events": self.events,
            "send_s": round(self.send_s, 3),
            "drain_s": round(self.drain_s, 3),
            "ask_s": round(self.ask_s, 3),
            "accepted_per_s": round(self.accepted_per_s, 1),
            "processed_per_s": round(self.processed_per_s, 1),
            "p50_ms": round(percentile(self.latencies_ms, 50), 1),
            "p99_ms": round(percentile(self.latencies_ms, 99), 1),
            **{f"history_{k}_per_event": v for k, v in (self.history or {}).items()},
        }


def medians(runs: Sequence[PopulationRun]) -> dict[str, float]:
    rows = [run.summary() for run in runs]
    keys = ("accepted_per_s", "processed_per_s", "p50_ms", "p99_ms", "drain_s")
    return {key: round(statistics.median(float(row[key]) for row in rows), 3) for key in keys}


def history_medians(runs: Sequence[PopulationRun]) -> dict[str, float] | None:
    measured = [run.history for run in runs if run.history]
    if not measured:
        return None
    return {key: round(statistics.median(h[key] for h in measured), 2) for key in measured[0]}


def compare(runs: Sequence[PopulationRun]) -> dict[str, Any]:
    """Both workflows' medians over one population's runs, and the lead / counting ratios."""
    counting = medians([r for r in runs if r.kind == "counting"])
    lead = medians([r for r in runs if r.kind == "lead"])
    compared: dict[str, Any] = {
        "counting": counting,
        "lead": lead,
        "ratio_accepted": round(lead["accepted_per_s"] / counting["accepted_per_s"], 3),
        "ratio_processed": round(lead["processed_per_s"] / counting["processed_per_s"], 3),
    }
    counting_history = history_medians([r for r in runs if r.kind == "counting"])
    lead_history = history_medians([r for r in runs if r.kind == "lead"])
    if counting_history and lead_history:
        compared["history_per_event"] = {"counting": counting_history, "lead": lead_history}
    return compared


async def history_totals(client: Client, workflow_ids: Sequence[str]) -> tuple[int, int]:
    """The history events and bytes of ``workflow_ids`` together (``describe``)."""
    events = size = 0
    for workflow_id in workflow_ids:
        info = (await client.get_workflow_handle(workflow_id).describe()).raw_description
        events += info.workflow_execution_info.history_length
        size += info.workflow_execution_info.history_size_bytes
    return events, size


# --- the population ---------------------------------------------------------------------------


HISTORY_SAMPLE = 20  # running workflows whose history growth is measured, each kind
STALLED_S = 120.0  # drain gives up when no workflow has gone idle for this long


def event_for(lead_id: str, index: int, number: int) -> LeadEvent:
    return LeadEvent.model_validate({"lead_id": lead_id, **EVENT_MIX[(index + number) % 8]})


async def send_population(
    send: Callable[[LeadEvent], Awaitable[object]],
    lead_ids: Sequence[str],
    events: int,
    in_flight: int,
    first: int = 0,
) -> tuple[float, list[float]]:
    """Send every lead's events ``first`` to ``first + events - 1`` in order, ``in_flight``
    leads at once; wall time and the latency of every call (ms)."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for index, lead in enumerate(lead_ids):
        queue.put_nowait((index, lead))
    latencies: list[float] = []

    async def sender() -> None:
        while not queue.empty():
            index, lead = queue.get_nowait()
            for number in range(first, first + events):
                event = event_for(lead, index, number)
                started = time.perf_counter()
                await send(event)
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(min(in_flight, len(lead_ids)))))
    return time.perf_counter() - started, latencies


async def drain(client: Client, workflow_ids: Sequence[str], in_flight: int) -> tuple[float, float]:
    """Seconds until every workflow is idle: no workflow task and no activity pending, i.e.
    every event signalled (all accepted by then) has been applied and its effects carried
    out. Asked with ``describe`` (the server alone answers; a query would go through the
    worker and cost more than the work measured), ``in_flight`` workflows a round, in the
    order they were sent: a round asks again only those still busy and takes the next ones
    in their place, so the asking costs about one ``describe`` a workflow however long the
    work takes (asking every busy workflow each round took 7-8 s a round on 2 cores at 5,000
    workflows, and measured the asking more than the work). Gives up when no workflow has gone
    idle for ``STALLED_S``. Also the duration of one more pass over every workflow: what
    asking costs."""
    started = time.perf_counter()
    waiting = list(workflow_ids)
    asked: list[str] = []
    progress = started
    semaphore = asyncio.Semaphore(in_flight)

    async def idle(workflow_id: str) -> bool:
        async with semaphore:
            raw = (await client.get_workflow_handle(workflow_id).describe()).raw_description
            return not raw.HasField("pending_workflow_task") and not raw.pending_activities

    while asked or waiting:
        taken = min(in_flight - len(asked), len(waiting))
        asked, waiting = asked + waiting[:taken], waiting[taken:]
        finished = await asyncio.gather(*(idle(w) for w in asked))
        busy = [w for w, ok in zip(asked, finished, strict=True) if not ok]
        if len(busy) < len(asked):
            progress = time.perf_counter()
        asked = busy
        if busy:
            if time.perf_counter() - progress > STALLED_S:
                raise RuntimeError(
                    f"{len(busy) + len(waiting)} workflows not idle; none went idle for "
                    f"{STALLED_S:.0f} s"
                )
            await asyncio.sleep(0.02)
    drained = time.perf_counter() - started
    again = time.perf_counter()
    await asyncio.gather(*(idle(w) for w in workflow_ids))
    return drained, time.perf_counter() - again


@dataclass
class Engines:
    client: Client
    lead_queue: str
    counting_queue: str
    standin: SendGridStandIn
    lead_workflows: list[str] = field(default_factory=list)
    leads_idle_at: float = 0.0

    async def run_population(
        self,
        kind: str,
        repeat: int,
        leads: int,
        events: int,
        in_flight: int,
        population: str = "new",
    ) -> PopulationRun:
        """Time ``events`` events to each of ``leads`` workflows. ``new``: the first of them
        starts the workflow. ``running``: each workflow was started by one event before the
        clock starts (and is idle, in the worker's cache), as most events find their lead."""
        prefix = f"{kind[0]}{population[0]}{repeat}-{uuid.uuid4().hex[:6]}"
        lead_ids = [f"{prefix}-{n}" for n in range(leads)]
        client = self.client
        if kind == "lead":

            async def send(event: LeadEvent) -> object:
                return await send_event(client, event, task_queue=self.lead_queue)

            workflow_ids = [workflow_id_for(lead) for lead in lead_ids]
        else:

            async def send(event: LeadEvent) -> object:
                return await client.start_workflow(
                    CountingWorkflow.run,
                    event.lead_id,
                    id=f"count-{event.lead_id}",
                    task_queue=self.counting_queue,
                    start_signal="event",
                    start_signal_args=[event],
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )

            workflow_ids = [f"count-{lead}" for lead in lead_ids]

        opening = 0
        sample = workflow_ids[:HISTORY_SAMPLE]
        before: tuple[int, int] | None = None
        if population == "running":
            opening = 1
            await send_population(send, lead_ids, 1, in_flight)
            await drain(client, workflow_ids, in_flight)
            before = await history_totals(client, sample)
        send_s, latencies = await send_population(send, lead_ids, events, in_flight, opening)
        drain_s, ask_s = await drain(client, workflow_ids, in_flight)
        if kind == "lead":
            self.lead_workflows += workflow_ids
            self.leads_idle_at = time.perf_counter()
        history = None
        if before is not None:  # what each behaviour event added to a running history
            after = await history_totals(client, sample)
            applied = len(sample) * events
            history = {
                "events": round((after[0] - before[0]) / applied, 2),
                "bytes": round((after[1] - before[1]) / applied),
            }
        if repeat == 1:  # once per kind: every event was applied (behaviour, not timing)
            await self.check_applied(kind, workflow_ids, opening + events)
        return PopulationRun(
            kind, population, repeat, leads * events, send_s, drain_s, ask_s, latencies, history
        )

    async def check_applied(self, kind: str, workflow_ids: Sequence[str], events: int) -> None:
        for workflow_id in workflow_ids[:20]:
            if kind == "lead":
                handle = self.client.get_workflow_handle(workflow_id)
                applied = (await handle.query(LeadWorkflow.state)).events_applied
            else:
                counter: WorkflowHandle[CountingWorkflow, None] = (
                    self.client.get_workflow_handle_for(CountingWorkflow.run, workflow_id)
                )
                applied = await counter.query(CountingWorkflow.count)
            if applied != events:
                raise RuntimeError(f"{workflow_id} applied {applied} of {events} events")

    async def settle(self, seconds: float, in_flight: int) -> float:
        """Wait until ``seconds`` after the last lead population went idle, then until every
        lead is idle again: their work due by then (the cadence's first touch, 10 minutes after
        enrolment in the shipped rules) is done before the hand-offs, which then measure a calm
        engine, not a timer storm. The seconds the wait took."""
        started = time.perf_counter()
        await asyncio.sleep(max(0.0, self.leads_idle_at + seconds - started))
        await drain(self.client, self.lead_workflows, in_flight)
        return time.perf_counter() - started

    async def handoffs(self, leads: int, in_flight: int) -> dict[str, Any]:
        """Latency from ``requested_call`` accepted to the rep's handoff email at the stand-in."""
        client, standin = self.client, self.standin
        prefix = f"h-{uuid.uuid4().hex[:6]}"
        queue: asyncio.Queue[str] = asyncio.Queue()
        for n in range(leads):
            queue.put_nowait(f"{prefix}-{n}")
        latencies: list[float] = []
        missing: list[str] = []

        async def one() -> None:
            while not queue.empty():
                lead = queue.get_nowait()
                event = LeadEvent(lead_id=lead, type="requested_call")
                await send_event(client, event, task_queue=self.lead_queue)
                accepted = datetime.now(UTC)
                deadline = time.monotonic() + 30
                while not (found := standin.messages_with(lead_id=lead, category="handoff")):
                    if time.monotonic() > deadline:
                        missing.append(lead)
                        break
                    await asyncio.sleep(0.005)
                if found:
                    latencies.append((found[0].received_at - accepted).total_seconds() * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(min(in_flight, leads))))
        return {
            "leads": leads,
            "in_flight": in_flight,
            "seconds": round(time.perf_counter() - started, 3),
            "notified": len(latencies),
            "missing": len(missing),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies, default=0.0), 1),
        }


# --- workers ------------------------------------------------------------------------------------


def worker_kwargs(options: dict[str, int]) -> dict[str, Any]:
    """``temporalio.worker.Worker`` arguments for the options that are not ``WorkerOptions``
    fields."""
    kwargs: dict[str, Any] = {}
    for name, value in options.items():
        if name in OPTION_FIELDS or name == "workflow_threads":  # the latter: workflow_executor
            continue
        if name == "workflow_pollers":
            kwargs["workflow_task_poller_behavior"] = PollerBehaviorSimpleMaximum(value)
        elif name == "activity_pollers":
            kwargs["activity_task_poller_behavior"] = PollerBehaviorSimpleMaximum(value)
        else:
            kwargs[name] = value
    return kwargs


def workflow_executor(options: dict[str, int]) -> dict[str, Any]:
    """A ``Worker`` argument for ``workflow_threads``: a pool of its own for each worker that
    asks (none given: the SDK's default, a thread per workflow-task slot)."""
    threads = options.get("workflow_threads")
    if threads is None:
        return {}
    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="bench_workflow_")
    return {"workflow_task_executor": pool}


@contextlib.contextmanager
def extra_worker_arguments(kwargs: dict[str, Any]) -> Iterator[None]:
    """``build_worker`` as shipped, with extra ``Worker`` arguments for the options tried."""
    original = worker_module.Worker
    if kwargs:
        setattr(worker_module, "Worker", functools.partial(Worker, **kwargs))  # noqa: B010
    try:
        yield
    finally:
        setattr(worker_module, "Worker", original)  # noqa: B010


@contextlib.asynccontextmanager
async def engines(
    client: Client,
    standin: SendGridStandIn,
    database_url: str,
    source: RulesSource,
    options: dict[str, int],
    ablate: Sequence[str] = (),
) -> AsyncIterator[Engines]:
    """The lead worker (``build_worker``) and the counting worker, same options, own queues."""
    run_id = uuid.uuid4().hex[:8]
    worker_options = WorkerOptions(
        config_dir=DEFAULT_CONFIG_DIR,
        templates_dir=DEFAULT_TEMPLATES_DIR,
        database_url=database_url,
        mailer=MailerSettings(api_key="SG.bench-key", base_url=standin.url),
        signer=LinkSigner(secret=BENCH_SECRET),
        crm=None,
        task_queue=f"bench-lead-{run_id}",
        **{name: value for name, value in options.items() if name in OPTION_FIELDS},  # type: ignore[arg-type]
    )
    kwargs = worker_kwargs(options)
    if "sandbox" in ablate:  # both workers: the comparison stays like for like
        kwargs["workflow_runner"] = UnsandboxedWorkflowRunner()
    with extra_worker_arguments(kwargs | workflow_executor(options)):
        lead_worker = build_worker(client, worker_options, source)
    counting_worker = Worker(
        client,
        task_queue=f"bench-count-{run_id}",
        workflows=[CountingWorkflow],
        activity_executor=concurrent.futures.ThreadPoolExecutor(worker_options.activity_threads),
        max_cached_workflows=worker_options.max_cached_workflows,
        max_concurrent_activities=worker_options.activity_threads,
        **kwargs,
        **workflow_executor(options),
    )
    async with lead_worker, counting_worker:
        yield Engines(client, lead_worker.task_queue, counting_worker.task_queue, standin)


@contextlib.contextmanager
def without_read_model() -> Iterator[None]:
    """Leads whose read-model writes return at once without running: what a lead costs without
    its per-batch local activity (an ablation: such a history would not replay on the shipped
    code). ``temporalio.workflow`` is passed through the sandbox, so sandboxed leads see it."""
    original = temporalio.workflow.execute_local_activity

    async def skip_record_facts(activity: Any, *args: Any, **kwargs: Any) -> Any:
        if activity == RECORD_FACTS:
            return None
        return await original(activity, *args, **kwargs)

    setattr(temporalio.workflow, "execute_local_activity", skip_record_facts)  # noqa: B010
    try:
        yield
    finally:
        setattr(temporalio.workflow, "execute_local_activity", original)  # noqa: B010


@contextlib.contextmanager
def without_read_model_write() -> Iterator[None]:
    """The read-model local activity runs (scheduled, run on the activity threads, its result
    in a second activation) but writes nothing: what the local activity's mechanics cost apart
    from the database write (an ablation, as ``without_read_model``)."""
    original = records.write_batches
    records.write_batches = lambda engine, batches: None
    try:
        yield
    finally:
        records.write_batches = original


def ablated(parts: Sequence[str]) -> contextlib.AbstractContextManager[None]:
    if "read-model" in parts:
        return without_read_model()
    if "read-model-write" in parts:
        return without_read_model_write()
    return contextlib.nullcontext()


# --- the run ------------------------------------------------------------------------------------


def parse_option(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected an integer, got {value!r}") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine_throughput", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--leads", type=int, default=500, help="default: %(default)s")
    parser.add_argument("--events", type=int, default=4, help="per lead; default: %(default)s")
    parser.add_argument("--in-flight", type=int, default=50, help="default: %(default)s")
    parser.add_argument("--repeats", type=int, default=3, help="default: %(default)s")
    parser.add_argument(
        "--population",
        dest="populations",
        choices=POPULATIONS,
        action="append",
        help="new: every lead starts with its first timed event; running: each lead was "
        "started by one event before timing (repeatable; default: both)",
    )
    parser.add_argument("--warmup-leads", type=int, default=50, help="default: %(default)s")
    parser.add_argument("--handoff-leads", type=int, default=200, help="0: skip; %(default)s")
    parser.add_argument("--handoff-in-flight", type=int, default=10, help="default: %(default)s")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before the hand-offs, wait this long after the last lead population went idle, "
        "then until every lead is idle again (660: the populations' first touches are sent "
        "first); default: none",
    )
    parser.add_argument(
        "--worker-option",
        type=parse_option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="for both workers, e.g. max_cached_workflows=500 (repeatable)",
    )
    parser.add_argument(
        "--database-url", help="read model (default: a SQLite file in a temporary directory)"
    )
    parser.add_argument(
        "--sample-stacks",
        action="store_true",
        help="sample thread stacks during the lead runs (bench/sampling.py) and report them",
    )
    parser.add_argument("--sweep", action="store_true", help="measure the SWEEP variants too")
    parser.add_argument(
        "--ablate",
        choices=ABLATIONS,
        action="append",
        default=[],
        help="measure without a part, to see what it costs (never a way to run): 'sandbox' runs "
        "both workers' workflows unsandboxed; 'read-model' makes the lead drop its facts "
        "instead of writing them; 'read-model-write' runs the local activity without its "
        "database write (repeatable)",
    )
    parser.add_argument(
        "--codec",
        choices=("on", "off", "both"),
        default="on",
        help="encrypt payloads as the engine does (on), not (off), or measure both; "
        "default: %(default)s",
    )
    parser.add_argument("--results", type=Path, help="JSON file (default: bench/results/...)")
    args = parser.parse_args(argv)
    args.populations = list(dict.fromkeys(args.populations or POPULATIONS))
    return args


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


async def measure_variant(
    client: Client,
    standin: SendGridStandIn,
    database_url: str,
    source: RulesSource,
    name: str,
    options: dict[str, int],
    args: argparse.Namespace,
    handoff_leads: int,
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    whole, during_handoffs = FullCollections(), FullCollections()
    async with engines(client, standin, database_url, source, options, args.ablate) as engine:
        with whole:  # from here: the worker is up (start-up's own collections are not counted)
            if args.warmup_leads:
                for kind in ("counting", "lead"):
                    await engine.run_population(kind, 0, args.warmup_leads, 1, args.in_flight)
            runs: list[PopulationRun] = []
            samplers: list[StackSampler] = []
            kinds = list(itertools.product(args.populations, ("counting", "lead")))
            for repeat in range(1, args.repeats + 1):
                for population_kind, kind in kinds:
                    population = engine.run_population(
                        kind, repeat, args.leads, args.events, args.in_flight, population_kind
                    )
                    if kind == "lead" and args.sample_stacks:
                        with StackSampler() as sampler:
                            run = await population
                        samplers.append(sampler)
                    else:
                        run = await population
                    runs.append(run)
                    print(f"  [{name}] {json.dumps(run.summary())}", flush=True)
            settled_s = await engine.settle(args.settle, args.in_flight) if args.settle else None
            with during_handoffs:
                handoff = (
                    await engine.handoffs(handoff_leads, args.handoff_in_flight)
                    if handoff_leads
                    else None
                )
    populations = {
        population: compare([r for r in runs if r.population == population])
        for population in args.populations
    }
    return {
        "variant": name,
        "options": options,
        **populations[args.populations[0]],  # the first population's figures, at the top too
        "populations": populations,
        "runs": [r.summary() for r in runs],
        "handoff": handoff,
        "settled_s": round(settled_s, 1) if settled_s is not None else None,
        "lead_stacks": top(samplers, 30, STACK_PARTS) if samplers else None,
        "gc": {"whole_variant": whole.summary(), "during_handoffs": during_handoffs.summary()},
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


@contextlib.asynccontextmanager
async def dev_server(database_url: str) -> AsyncIterator[dict[str, Client]]:
    """A fresh in-memory dev server with Nurture's search attributes, and clients to it:
    ``plain`` and ``encrypted`` (payloads encrypted as the engine does, keys in the read
    model's database)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    keys = KeyStore(make_engine(database_url), MasterKeys(parse(generate(), "bench key")))
    try:
        yield {
            "plain": env.client,
            "encrypted": Client(
                env.client.service_client,
                namespace=env.client.namespace,
                data_converter=encrypted_converter(keys),
            ),
        }
    finally:
        await env.shutdown()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = dict(args.worker_option)
    variants = [("given options" if base else "defaults", base)]
    if args.sweep:
        variants += [(name, {**base, **extra}) for name, extra in SWEEP if extra]
    source = RulesSource(DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR, 1.0)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "population": {
            "leads": args.leads,
            "events_per_lead": args.events,
            "in_flight": args.in_flight,
            "repeats": args.repeats,
        },
        "variants": [],
    }
    results["ablated"] = args.ablate
    results["codec"] = args.codec
    with (
        tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp,
        SendGridStandIn() as standin,
        ablated(args.ablate),
    ):
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'nurture.db'}"
        results["database"] = database_url.split(":", 1)[0]
        codecs = {"on": ["encrypted"], "off": ["plain"], "both": ["plain", "encrypted"]}
        async with dev_server(database_url) as clients:
            for index, (name, options) in enumerate(variants):
                for codec in codecs[args.codec]:
                    label = f"{name}, {codec}" if args.codec == "both" else name
                    print(f"variant {label}: {options or 'worker.py defaults'}", flush=True)
                    handoff_leads = (
                        args.handoff_leads if index == 0 else min(args.handoff_leads, 100)
                    )
                    measured = await measure_variant(
                        clients[codec],
                        standin,
                        database_url,
                        source,
                        label,
                        options,
                        args,
                        handoff_leads,
                    )
                    results["variants"].append({**measured, "codec": codec})
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


def report(results: dict[str, Any]) -> str:
    population = results["population"]
    lines = [
        f"engine throughput, {results['date']}: {population['leads']} leads x "
        f"{population['events_per_lead']} events, {population['in_flight']} in flight, "
        f"median of {population['repeats']}; {results['machine']['cpus']} CPUs, load average "
        f"{results['machine']['load_average']} -> {results['machine']['load_average_after']}",
        "",
        f"{'variant':36} {'count acc/s':>11} {'lead acc/s':>10} {'ratio':>6} "
        f"{'count proc/s':>12} {'lead proc/s':>11} {'ratio':>6} "
        f"{'count p50/p99 ms':>17} {'lead p50/p99 ms':>16} {'handoff p50/p99 ms':>19}",
    ]
    for v in results["variants"]:
        h = v["handoff"]
        handoff = f"{h['p50_ms']:.0f}/{h['p99_ms']:.0f}" if h else "-"
        for population, p in v.get("populations", {"new": v}).items():
            c, lead = p["counting"], p["lead"]
            lines.append(
                f"{v['variant'] + ', ' + population + ' leads':36} "
                f"{c['accepted_per_s']:>11.0f} {lead['accepted_per_s']:>10.0f} "
                f"{p['ratio_accepted']:>6.2f} {c['processed_per_s']:>12.0f} "
                f"{lead['processed_per_s']:>11.0f} {p['ratio_processed']:>6.2f} "
                f"{c['p50_ms']:>8.0f}/{c['p99_ms']:<8.0f} "
                f"{lead['p50_ms']:>7.0f}/{lead['p99_ms']:<8.0f} {handoff:>19}"
            )
    first = results["variants"][0]
    if first["handoff"]:
        h = first["handoff"]
        lines += [
            "",
            f"handoff ({first['variant']}): {h['notified']}/{h['leads']} reps notified "
            f"({h['in_flight']} in flight), p50 {h['p50_ms']:.0f} ms, p99 {h['p99_ms']:.0f} ms, "
            f"max {h['max_ms']:.0f} ms (target p99 < 1000 ms)",
        ]
    for v in results["variants"]:
        if collections := v.get("gc"):
            whole, handoffs = collections["whole_variant"], collections["during_handoffs"]
            lines.append(
                f"full collections ({v['variant']}): {whole['full_collections']} "
                f"(max {whole['max_pause_ms']:.0f} ms, {handoffs['full_collections']} during "
                f"the handoffs), {whole['tracked_objects']:,} objects tracked at the end, "
                f"{whole['frozen_objects']:,} frozen, {whole['rss_mib']:.0f} MiB resident"
            )
    lines.append("(ratio = lead / counting; target >= 0.8)")
    for population, p in first.get("populations", {}).items():
        if "history_per_event" in p:
            c, lead = p["history_per_event"]["counting"], p["history_per_event"]["lead"]
            lines.append(
                f"history per behaviour event ({population} leads): counting {c['events']:.2f} "
                f"events / {c['bytes']:.0f} bytes, lead {lead['events']:.2f} / "
                f"{lead['bytes']:.0f}: {lead['events'] - c['events']:+.2f} events "
                "(target: counting + 2 at most)"
            )
    lines += codec_cost(results["variants"])
    for v in results["variants"]:
        if v.get("lead_stacks"):
            lines += ["", f"where busy threads were during the lead runs ({v['variant']}):"]
            lines += [f"  {share:5.1f}%  {name}" for name, share in v["lead_stacks"]]
    return "\n".join(lines)


def codec_cost(variants: Sequence[dict[str, Any]]) -> list[str]:
    """What encryption costs: each encrypted variant's lead throughput over the same variant's
    plain one, measured in the same run (``--codec both``)."""
    plain = {v["variant"].rsplit(", ", 1)[0]: v for v in variants if v.get("codec") == "plain"}
    lines = []
    for v in variants:
        base = plain.get(v["variant"].rsplit(", ", 1)[0])
        if v.get("codec") != "encrypted" or base is None:
            continue
        for population, p in v.get("populations", {"new": v}).items():
            q = base.get("populations", {"new": base})[population]
            lines.append(
                f"codec cost ({v['variant']}, {population} leads): lead processed/s encrypted "
                f"/ plain = {p['lead']['processed_per_s'] / q['lead']['processed_per_s']:.2f}, "
                f"accepted/s {p['lead']['accepted_per_s'] / q['lead']['accepted_per_s']:.2f}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(run(args))
    print()
    print(report(results))
    path = save_results(results, args.results, f"engine-throughput-{results['date']}.json")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    from nurture.runtime.logging import configure_logging
    from nurture.runtime.process import exit_now

    configure_logging(os.environ.get("NURTURE_LOG_LEVEL", "WARNING"))  # the worker's own logging
    exit_now(main(sys.argv[1:]))
