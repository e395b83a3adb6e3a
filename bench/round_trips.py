"""What one round trip through the dev server costs: a signal until its workflow applied it,
and an activity, with and without eager dispatch.

    .venv/bin/python -m bench.round_trips [--activities 300 --rounds 2]

A hand-off is a chain of round trips (the signal's workflow task, the routing activity, the
alert's activity). With eager dispatch the server hands an activity scheduled by a workflow
task straight back to the worker that completed the task, instead of through the task queue's
matching. One workflow runs ``--activities`` no-op activities one after another, on a fresh
in-memory dev server per variant: as shipped (``default``), the server's
``system.enableActivityEagerExecution`` set on or off, and the worker's
``disable_eager_activity_execution``. On the shipped server, also a signal sent and waited
for (by query) until the workflow applied it, ``--activities`` times, and a plain RPC
(``DescribeNamespace``). Nothing else runs: the figures are the floors under a hand-off.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.saving import save_results

TASK_QUEUE = "eager-probe"
SERVER_FLAG = "system.enableActivityEagerExecution"
VARIANTS: dict[str, tuple[list[str], bool]] = {
    "default": ([], False),
    "server on": (["--dynamic-config-value", f"{SERVER_FLAG}=true"], False),
    "server off": (["--dynamic-config-value", f"{SERVER_FLAG}=false"], False),
    "worker off": ([], True),
}
"""Each variant: the dev server's extra arguments and whether the worker turns eager off."""


@activity.defn
async def noop(index: int) -> int:
    return index


@workflow.defn
class SignalCounter:
    def __init__(self) -> None:
        self.signals = 0

    @workflow.signal
    def bump(self) -> None:
        self.signals += 1

    @workflow.query
    def count(self) -> int:
        return self.signals

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn
class ActivityChain:
    @workflow.run
    async def run(self, activities: int) -> int:
        total = 0
        for index in range(activities):
            total += await workflow.execute_activity(
                noop, index, start_to_close_timeout=timedelta(seconds=10)
            )
        return total


async def seconds_for_chain(binary: str, variant: str, activities: int) -> float:
    server_args, worker_off = VARIANTS[variant]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary,
        dev_server_extra_args=server_args,
        dev_server_log_level="error",
    )
    try:
        async with Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=[ActivityChain],
            activities=[noop],
            disable_eager_activity_execution=worker_off,
        ):
            # A short chain first: the worker's pollers and the sticky queue are in place.
            await env.client.execute_workflow(
                ActivityChain.run, 3, id=str(uuid.uuid4()), task_queue=TASK_QUEUE
            )
            started = time.perf_counter()
            await env.client.execute_workflow(
                ActivityChain.run, activities, id=str(uuid.uuid4()), task_queue=TASK_QUEUE
            )
            return time.perf_counter() - started
    finally:
        await env.shutdown()


async def signal_and_rpc_ms(binary: str, signals: int) -> dict[str, float]:
    """Milliseconds for a plain RPC, and for a signal until the workflow applied it."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary, dev_server_log_level="error"
    )
    try:
        service = env.client.workflow_service
        started = time.perf_counter()
        for _ in range(signals):
            await service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        rpc = time.perf_counter() - started
        async with Worker(env.client, task_queue=TASK_QUEUE, workflows=[SignalCounter]):
            handle = await env.client.start_workflow(
                SignalCounter.run, id=str(uuid.uuid4()), task_queue=TASK_QUEUE
            )
            await handle.query(SignalCounter.count)  # its first task is done, it is cached
            started = time.perf_counter()
            for sent in range(1, signals + 1):
                await handle.signal(SignalCounter.bump)
                while await handle.query(SignalCounter.count) < sent:
                    pass
            applied = time.perf_counter() - started
            await handle.terminate("measured")
        return {
            "rpc_ms": round(1000 * rpc / signals, 2),
            "signal_applied_ms": round(1000 * applied / signals, 1),
        }
    finally:
        await env.shutdown()


async def measure(activities: int, rounds: int) -> dict[str, object]:
    from nurture.client.temporal import installed_binary  # not in the workflow's sandbox

    binary = installed_binary("temporal")
    per_activity_ms: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_number in range(rounds):
        for variant in VARIANTS:
            seconds = await seconds_for_chain(binary, variant, activities)
            ms_each = round(1000 * seconds / activities, 1)
            per_activity_ms[variant].append(ms_each)
            print(f"round {round_number} {variant}: {seconds:.2f} s, {ms_each} ms an activity")
    floors = await signal_and_rpc_ms(binary, activities)
    print(
        f"a plain RPC: {floors['rpc_ms']} ms; a signal until applied: "
        f"{floors['signal_applied_ms']} ms",
        flush=True,
    )
    return {"activity_ms": per_activity_ms, **floors}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--results", type=Path, help="default: bench/results/round-trips-<date>.json"
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.activities, args.rounds))
    path = save_results(
        {"activities": args.activities, **figures},
        args.results,
        f"round-trips-{time.strftime('%Y-%m-%d')}.json",
    )
    print(f"figures in {path}")


if __name__ == "__main__":
    main()
