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
read model).

Then the same number of other leads through ``POST /api/leads/import`` of a running ``nurture
serve`` (its own process, a marketer's key), the CSV in requests of ``MAX_ITEMS`` rows, one at a
time as an import script would send them; timed from the first request to the last answer (the
service is up, as in production), every row answered ``accepted``; leads/s and its ratio to the
counting starter. Timings are never asserted: ``tests/test_bench_start_rate_smoke.py`` runs it
tiny.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.counting_starts import COUNTING_QUEUE, start_counting
from bench.counting_workflow import CountingWorkflow
from bench.idle_scale import (
    ROOT,
    count_leads,
    free_port,
    share_data_keys,
    sleeping_rules,
    start_worker,
)
from bench.saving import save_results
from nurture.client.ingest import IN_FLIGHT
from nurture.client.temporal import installed_binary
from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.runtime.process import exit_now
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.web.ingest_api import MAX_ITEMS

HEADER = ["lead_id", "email", "first_name", "company", "company_size", "region"]


def lead_rows(prefix: str, first: int, count: int) -> list[list[str | int]]:
    return [
        [f"{prefix}-{n:06d}", f"{prefix}{n}@corp{n % 97}.example", "Pat", "Corp", 40, "EMEA"]
        for n in range(first, first + count)
    ]


def write_csv(path: Path, leads: int) -> None:
    with path.open("w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(HEADER)
        rows.writerows(lead_rows("start", 0, leads))


def csv_text(rows: list[list[str | int]]) -> str:
    out = io.StringIO()
    sheet = csv.writer(out)
    sheet.writerow(HEADER)
    sheet.writerows(rows)
    return out.getvalue()


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


def marketer_key(env: dict[str, str]) -> str:
    command = ["keys", "create", "--role", "marketer", "--name", "start-rate", "--quiet"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


async def service_ready(service: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            if service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nurture serve did not start: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.2)


async def import_over_http(url: str, key: str, leads: int) -> float:
    """``leads`` new leads through ``POST /api/leads/import``, ``MAX_ITEMS`` rows a request,
    one request at a time; the seconds from the first request to the last answer."""
    sheets = [
        csv_text(lead_rows("api", first, min(MAX_ITEMS, leads - first)))
        for first in range(0, leads, MAX_ITEMS)
    ]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    async with httpx.AsyncClient(timeout=1800) as http:
        began = time.perf_counter()
        for sheet in sheets:
            answer = await http.post(f"{url}/api/leads/import", content=sheet, headers=headers)
            answer.raise_for_status()
            if (found := answer.json())["accepted"] != len(sheet.splitlines()) - 1:
                raise RuntimeError(f"the import did not accept every row: {str(found)[:2000]}")
        return time.perf_counter() - began


async def until_rows(db_url: str, rows: int, began: float) -> tuple[float, int]:
    """Seconds since ``began`` until the read model holds ``rows`` leads (each ran its first
    workflow task), or 30 minutes; and the leads it holds then."""
    while (held := count_leads(db_url)) < rows and time.perf_counter() - began < 1800:
        await asyncio.sleep(0.5)
    return time.perf_counter() - began, held


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
        service: subprocess.Popen[bytes] | None = None
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
                settled_s, rows = await until_rows(db_url, leads, time.perf_counter() - lead_s)
                port = free_port()
                service = subprocess.Popen(
                    [sys.executable, str(ROOT / "starter.py"), "serve", "--port", str(port)],
                    cwd=ROOT,
                    env=shared,
                    stdout=(tmp / "serve.log").open("ab"),
                    stderr=subprocess.STDOUT,
                )
                url = f"http://127.0.0.1:{port}"
                await service_ready(service, url, tmp / "serve.log")
                api_s = await import_over_http(url, marketer_key(shared), leads)
                api_settled_s, api_rows = await until_rows(
                    db_url, 2 * leads, time.perf_counter() - api_s
                )
        finally:
            for process in (worker, service):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
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
        "api_import_s": round(api_s, 2),
        "api_leads_per_s": round(leads / api_s, 1),
        "api_ratio": round(count_s / api_s, 3),
        "api_first_task_all_s": round(api_settled_s, 2),
        "api_leads_with_a_row": api_rows - leads,
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
        f"(every lead's first task done after {found['first_task_all_s']} s); "
        f"POST /api/leads/import {found['api_leads_per_s']}/s: ratio {found['api_ratio']} "
        f"(first tasks done after {found['api_first_task_all_s']} s)"
    )
    day = datetime.now(UTC).date().isoformat()
    print(f"results: {save_results(found, args.results, f'start-rate-{day}.json')}")


if __name__ == "__main__":
    main()
