"""Start rate: new leads per second through ``nurture lead add leads.csv``, the path a user
takes (its own process, its progress bar, its encryption keys, its checks), against starting the
counting workflow the same number of times from a process of its own, in the same run.

    .venv/bin/python -m bench.start_rate [--leads 5000] [--results FILE]

One dev server in memory; the lead worker (``worker.py`` as shipped, its own process, the shipped
config with each cadence's first touch a day away so new leads only enrol) and the counting
worker run while their workflows are started, as in production. Both starters signal-with-start
``--leads`` workflows, ``nurture.client.ingest.IN_FLIGHT`` at a time, and are timed as whole
commands (interpreter start included, the same for both). Reported: leads/s and the ratio
lead / counting, and how long until every lead ran its first workflow task (its row in the
read model). Timings are never asserted: ``tests/test_bench_start_rate_smoke.py`` runs it tiny.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.counting_starts import COUNTING_QUEUE, start_counting
from bench.counting_workflow import CountingWorkflow
from bench.idle_scale import ROOT, count_leads, share_data_keys, sleeping_rules, start_worker
from bench.saving import save_results
from nurture.client.ingest import IN_FLIGHT
from nurture.client.temporal import installed_binary
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.runtime.process import exit_now
from nurture.standins.sendgrid_standin import SendGridStandIn


def write_csv(path: Path, leads: int) -> None:
    with path.open("w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(["lead_id", "email", "first_name", "company", "company_size", "region"])
        for n in range(leads):
            rows.writerow(
                [f"start-{n:06d}", f"p{n}@corp{n % 97}.example", "Pat", "Corp", 40, "EMEA"]
            )


async def start_counting_process(address: str, leads: int) -> None:
    """The baseline's starter (run as its own process by ``--count``)."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    await start_counting(client, leads, IN_FLIGHT)


async def worker_ready(worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while "worker ready" not in (log.read_text(errors="replace") if log.exists() else ""):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the lead worker did not start: {log.read_text()[-2000:]}")
        await asyncio.sleep(0.2)


def timed(command: list[str], env: dict[str, str], log: Path) -> float:
    began = time.perf_counter()
    with log.open("ab") as out:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{command[2:4]} exited {done.returncode}: {log.read_text()[-2000:]}")
    return time.perf_counter() - began


async def run(leads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nurture-start-") as tmp_dir, SendGridStandIn() as mail:
        tmp = Path(tmp_dir)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=installed_binary("temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_log_level="error",
        )
        address = env.client.service_client.config.target_host
        db_url = f"sqlite:///{tmp / 'nurture.db'}"
        share_data_keys(db_url)  # the CLI and the worker below: the same data keys
        shared = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "NURTURE_DATABASE_URL": db_url,
            "NURTURE_DATA_DIR": str(tmp),
            "COLUMNS": "100",
        }
        shared.pop("SENDGRID_API_KEY", None)
        worker = start_worker(tmp, sleeping_rules(tmp), address, db_url, mail.url)
        counting = Worker(env.client, task_queue=COUNTING_QUEUE, workflows=[CountingWorkflow])
        try:
            async with counting:
                await worker_ready(worker, tmp / "worker.log")
                count_s = await asyncio.to_thread(
                    timed,
                    [sys.executable, "-m", "bench.start_rate", "--count", str(leads), address],
                    shared,
                    tmp / "counting.log",
                )
                sheet = tmp / "leads.csv"
                write_csv(sheet, leads)
                lead_s = await asyncio.to_thread(
                    timed,
                    [sys.executable, str(ROOT / "starter.py"), "lead", "add", str(sheet)],
                    shared,
                    tmp / "lead-add.log",
                )
                began = time.perf_counter() - lead_s
                while (rows := count_leads(db_url)) < leads:  # each lead ran its first task
                    if time.perf_counter() - began > 1800:
                        break
                    await asyncio.sleep(0.5)
                settled_s = time.perf_counter() - began
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            await env.shutdown()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} cpu",
        "leads": leads,
        "in_flight": IN_FLIGHT,
        "counting_s": round(count_s, 2),
        "lead_add_s": round(lead_s, 2),
        "counting_per_s": round(leads / count_s, 1),
        "leads_per_s": round(leads / lead_s, 1),
        "ratio": round(count_s / lead_s, 3),
        "first_task_all_s": round(settled_s, 2),
        "leads_with_a_row": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--results", type=Path, help="JSON file (default bench/results/)")
    parser.add_argument("--count", nargs=2, metavar=("N", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        asyncio.run(start_counting_process(args.count[1], int(args.count[0])))
        exit_now(0)  # the SDK's threads must not see interpreter teardown (ENVIRONMENT.md)
    found = asyncio.run(run(args.leads))
    print(
        f"start rate, {found['leads']:,} leads: nurture lead add {found['leads_per_s']}/s, "
        f"counting {found['counting_per_s']}/s: ratio {found['ratio']} "
        f"(every lead's first task done after {found['first_task_all_s']} s)"
    )
    day = datetime.now(UTC).date().isoformat()
    print(f"results: {save_results(found, args.results, f'start-rate-{day}.json')}")


if __name__ == "__main__":
    main()
