"""Run a Nurture worker: the lead and erasure workflows and their activities on ``nurture-leads``.

``python worker.py [--config DIR]`` against any Temporal (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, TLS/API-key variables); start as many as the load needs.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import sys

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import (
    CrmActivities,
    EmailActivities,
    Mailer,
    RecordActivities,
    RoutingActivities,
    RulesActivities,
    TaskActivities,
    all_activities,
)
from activities.erasure import ErasureActivities
from activities.retention import RetentionActivities
from nurture.access.consent import ConsentConfigError
from nurture.config.config_loader import config_dir_from_env, templates_dir_from_env
from nurture.config.rules_source import RulesSource
from nurture.config.settings import WorkerOptions
from nurture.contract import shared_rules
from nurture.contract.messages import TASK_QUEUE
from nurture.reports.worker_gauges import worker_gauges
from nurture.runtime.metrics import metrics_runtime
from nurture.runtime.tracing import tracer_provider_from_env, tracing_interceptors
from nurture.store.db import data_dir_from_env, keep_private, make_engine
from workflows.erasure import ErasureWorkflow
from workflows.lead import LeadWorkflow
from workflows.retention import RetentionSweep

log = structlog.get_logger(__name__)


def build_worker(client: Client, options: WorkerOptions, source: RulesSource) -> Worker:
    """A worker for leads and their erasures, every activity wired to its dependencies."""
    engine = make_engine(options.database_url)
    source.record_status_in(engine)  # for `nurture config status` and the dashboard
    shared_rules.SHELF.read_from(source.kept_rules)  # versions met in histories, not loaded here
    mailer = Mailer(options.mailer)
    activities = all_activities(
        RulesActivities(source),
        # Templates come from the rules version in force, in memory: never a newer file.
        EmailActivities(engine, mailer, source, options.signer),
        RoutingActivities(engine),
        RecordActivities(engine),
        TaskActivities(engine, source),
        CrmActivities(options.crm),
    )
    activities += ErasureActivities(client, engine, mailer, options.crm).all()
    activities += RetentionActivities(engine).all()
    log.info(
        "worker ready",
        task_queue=options.task_queue,
        rules=source.current().version,
        config=str(options.config_dir),
        mail=options.mailer.base_url,
    )
    worker = Worker(
        client,
        task_queue=options.task_queue,
        workflows=[LeadWorkflow, ErasureWorkflow, RetentionSweep],
        activities=activities,
        activity_executor=concurrent.futures.ThreadPoolExecutor(options.activity_threads),
        max_cached_workflows=options.max_cached_workflows,
        max_concurrent_activities=options.activity_threads,
    )
    tune_garbage_collector(options.gc_young_threshold, freeze=options.gc_freeze)
    return worker


def tune_garbage_collector(young_threshold: int, *, freeze: bool) -> None:
    """Collect the youngest generation every ``young_threshold`` allocations (CPython: 700);
    with ``freeze``, leave what start-up built (modules, rules, clients) out of every later
    collection.

    Objects of in-flight workflow tasks live a few hundred milliseconds; at 700 many survive two
    young collections and reach the oldest generation, whose collection walks every cached lead
    (~310 objects each, ~0.6 million at 2,000 cached: ``bench.cached_objects``) and stops every
    lead on the worker: 13 full collections of up to 0.9 s in a 95 s benchmark, handoff p99
    2.3-2.7 s. At 10,000 they die young: 1 full collection, handoff p99 0.96 s
    (``bench/README.md``). A full collection also walks every object start-up made, which lives
    as long as the process: ``gc.freeze`` moves them where no collection looks."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
    if freeze:
        gc.collect()  # start-up's garbage goes first, not into the frozen generation
        gc.freeze()


async def run_worker(options: WorkerOptions) -> None:
    from nurture.client.retention import keep_retention_schedule
    from nurture.client.temporal import connect

    source = options.rules_source()  # fail on a broken config before connecting
    address = options.metrics_address
    runtime = metrics_runtime(address) if address else None  # fails if the port is taken
    tracer = tracer_provider_from_env("nurture-worker")
    client = await connect(runtime=runtime, interceptors=tracing_interceptors(tracer))
    worker = build_worker(client, options, source)
    retention = await keep_retention_schedule(client, source.current().engine, options.task_queue)
    log.info("retention schedule", schedule=retention)
    if runtime is not None:
        log.info("metrics served", url=f"http://{address}/metrics")
    meter = runtime.metric_meter if runtime is not None else None
    try:
        async with worker, worker_gauges(meter, options.database_url, source):
            await asyncio.Event().wait()
    finally:
        if tracer is not None:
            tracer.shutdown()  # the spans still batched are sent


def main(argv: list[str] | None = None) -> int:
    from nurture.config.config_loader import ConfigError
    from nurture.runtime.logging import configure_logging
    from nurture.runtime.process import exit_now
    from nurture.store.availability import DATABASE_UNAVAILABLE, unavailable_in_words
    from nurture.store.migrations import SchemaTooNewError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="rules directory (default: NURTURE_CONFIG or config/)")
    parser.add_argument("--templates", help="templates directory (default: templates/)")
    parser.add_argument("--task-queue", default=TASK_QUEUE, help="default: %(default)s")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="divide every rule duration (demos: 3600 makes an hour a second)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    keep_private(data_dir_from_env())  # the database, secret key and logs: this user's only
    try:
        options = WorkerOptions(
            config_dir=config_dir_from_env(args.config),
            templates_dir=templates_dir_from_env(args.templates),
            time_scale=args.time_scale,
            task_queue=args.task_queue,
        )
        asyncio.run(run_worker(options))
    except (SchemaTooNewError, ValueError) as exc:  # the schema is newer; TLS settings half set
        log.error("worker not started", problem=str(exc))
        print(f"  {exc}", file=sys.stderr)
        return exit_now(2)
    except (ConfigError, ConsentConfigError) as exc:
        log.error("worker not started: fix the configuration", problems=exc.problems)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return exit_now(2)
    except DATABASE_UNAVAILABLE as exc:  # at start: refused, cut, or no answer in time
        problem = unavailable_in_words(exc)
        log.error("worker not started: the engine database did not answer", problem=problem)
        print(f"  the engine database did not answer: {problem}", file=sys.stderr)
        return exit_now(2)
    except KeyboardInterrupt:
        return exit_now(0)
    return exit_now(0)


if __name__ == "__main__":
    raise SystemExit(main())
