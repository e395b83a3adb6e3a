"""Idle scale: many leads asleep in their cadences on one worker and one dev server.

Starts a Temporal dev server on a SQLite file, the SendGrid stand-in and one ``worker.py``
process (the shipped config and templates, each cadence's first touch a day away so the
leads sleep), then starts ``--leads`` leads by signal-with-start and waits until every one has
run its first workflow task (its row is in the read model). Reports the time to start them,
the worker's memory (against the same worker idle, measured in the same run: the ratio), the
server's and the read model's disk, and the worker's memory as the population grows (a bounded
sticky cache keeps it flat). Then, as the baseline, as many counting workflows
(``bench/counting_workflow.py``, started with the same first event) on the same server: what
the server's disk grows by for each is what Temporal itself charges for an idle workflow.

    python -m bench.idle_scale                  # 100,000 leads (~65 min on 2 cores)
    python -m bench.idle_scale --leads 2000     # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, func, select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.counting_starts import COUNTING_QUEUE, await_first_tasks, start_counting
from bench.counting_workflow import CountingWorkflow
from bench.saving import save_results
from nurture.cli.embedded import EmbeddedOptions, start_dev_server, stop_process, wait_for_server
from nurture.client.starting import send_profile
from nurture.domain.leads import LeadProfile
from nurture.privacy.converter import KEYS_DATABASE_ENV
from nurture.privacy.master_keys import MASTER_KEY_ENV, generate
from nurture.runtime.process import exit_now
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.read_model import LeadRecord, table_of

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


@dataclass
class IdleScaleResult:
    leads: int
    in_flight: int
    start_seconds: float = 0.0
    starts_per_second: float = 0.0
    asleep_seconds: float = 0.0
    worker_rss_idle_mib: float = 0.0
    worker_rss_mib: float = 0.0
    worker_peak_rss_mib: float = 0.0
    rss_ratio_to_idle: float = 0.0
    server_disk_mib: float = 0.0
    counting_disk_mib: float = 0.0
    """What the server's disk grew by for as many idle counting workflows (the baseline)"""
    read_model_disk_mib: float = 0.0
    rss_by_population: list[tuple[int, float]] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mib(directory: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in directory.glob(pattern)) / MIB


def sleeping_rules(tmp: Path) -> Path:
    """The shipped rules with every cadence's first touch a day away: the leads sleep."""
    return first_touch_rules(tmp, "1d")


def first_touch_rules(tmp: Path, delay: str, send_window: str | None = None) -> Path:
    """The shipped rules, copied into ``tmp``, with every cadence's first touch ``delay`` after
    enrolment; with ``send_window``, that window for every cadence (``"anytime"``: all day)."""
    config = tmp / "config"
    shutil.copytree(ROOT / "config", config)
    cadences = yaml.safe_load((config / "cadences.yaml").read_text())
    if send_window is not None:
        cadences["send_window"] = send_window
    for cadence in cadences["cadences"]:
        if send_window is not None:
            cadence.pop("send_window", None)
        cadence["steps"][0]["delay"] = delay
    (config / "cadences.yaml").write_text(yaml.safe_dump(cadences))
    return config


def share_data_keys(db_url: str) -> None:
    """The leads' data keys in the bench's database, under one master key, for this process
    (which starts the leads) and the worker it starts: each encrypts or decrypts a lead's
    payloads with the same key (a run from a shell has no ``NURTURE_*`` of its own; the test
    suite gives its own, kept)."""
    os.environ.setdefault(KEYS_DATABASE_ENV, db_url)
    os.environ.setdefault(MASTER_KEY_ENV, generate())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_worker(
    tmp: Path, config: Path, address: str, db_url: str, mail: str
) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "NURTURE_DATABASE_URL": db_url,
        "NURTURE_SENDGRID_URL": mail,
        "NURTURE_DATA_DIR": str(tmp),
        "NURTURE_LOG_FORMAT": "json",
        "NURTURE_METRICS_PORT": str(free_port()),  # served, as in production; never shared
    }
    environment.pop("SENDGRID_API_KEY", None)
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "worker.py"),
            "--config",
            str(config),
            "--templates",
            str(ROOT / "templates"),
        ],
        cwd=ROOT,
        env=environment,
        stdout=(tmp / "worker.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def count_leads(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(table_of(LeadRecord))).scalar_one()
            )
    except Exception:
        return 0
    finally:
        engine.dispose()


async def run(leads: int, in_flight: int, keep: Path | None) -> IdleScaleResult:
    result = IdleScaleResult(leads=leads, in_flight=in_flight)
    tmp = keep or Path(tempfile.mkdtemp(prefix="nurture-idle-"))
    tmp.mkdir(parents=True, exist_ok=True)
    config = sleeping_rules(tmp)
    db_url = f"sqlite:///{tmp / 'nurture.db'}"
    share_data_keys(db_url)
    port = free_port()
    options = EmbeddedOptions(
        data_dir=tmp / "temporal",
        config_dir=config,
        templates_dir=ROOT / "templates",
        port=port,
        headless=True,
    )
    address = f"127.0.0.1:{port}"
    server = start_dev_server(options)
    worker: subprocess.Popen[bytes] | None = None
    try:
        with SendGridStandIn() as standin:
            client = await wait_for_server(address, server)
            worker = start_worker(tmp, config, address, db_url, standin.url)
            while "worker ready" not in (tmp / "worker.log").read_text():
                if worker.poll() is not None:
                    raise RuntimeError((tmp / "worker.log").read_text()[-2000:])
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            result.worker_rss_idle_mib = rss_mib(worker.pid)
            print(f"worker idle: {result.worker_rss_idle_mib:.0f} MiB RSS", flush=True)

            gate = asyncio.Semaphore(in_flight)
            started = 0

            async def start_one(n: int) -> None:
                nonlocal started
                profile = LeadProfile(
                    lead_id=f"idle-{n:06d}",
                    email=f"lead{n}@corp.example",
                    company_size=[20, 200, 2000][n % 3],
                    region=["EMEA", "AMER", "APAC"][n % 3],
                    campaign=f"campaign-{n % 8}",
                )
                async with gate:
                    await send_profile(client, profile)
                started += 1
                if started % max(1, leads // 10) == 0:
                    print(f"  {started:,} started in {time.monotonic() - t0:.0f} s", flush=True)

            t0 = time.monotonic()
            await asyncio.gather(*(start_one(n) for n in range(leads)))
            result.start_seconds = time.monotonic() - t0
            result.starts_per_second = leads / result.start_seconds
            peak, milestone = 0.0, leads // 10
            while (asleep := await asyncio.to_thread(count_leads, db_url)) < leads:
                rss = rss_mib(worker.pid)
                peak = max(peak, rss)
                if asleep >= milestone:  # the worker's memory as the sleeping population grows
                    result.rss_by_population.append((asleep, round(rss, 1)))
                    milestone = (asleep // max(1, leads // 10) + 1) * max(1, leads // 10)
                print(
                    f"  {asleep:,} of {leads:,} asleep after {time.monotonic() - t0:.0f} s; "
                    f"worker {rss:.0f} MiB",
                    flush=True,
                )
                await asyncio.sleep(5)
            result.asleep_seconds = time.monotonic() - t0
            await asyncio.sleep(2)
            result.worker_rss_mib = rss_mib(worker.pid)
            result.rss_by_population.append((leads, round(result.worker_rss_mib, 1)))
            result.worker_peak_rss_mib = max(peak, rss_mib(worker.pid, "VmHWM"))
            result.rss_ratio_to_idle = result.worker_rss_mib / result.worker_rss_idle_mib
            result.server_disk_mib = disk_mib(tmp / "temporal", "temporal.db*")
            result.read_model_disk_mib = disk_mib(tmp, "nurture.db*")
            await counting_population(address, leads, in_flight)
            counted = disk_mib(tmp / "temporal", "temporal.db*") - result.server_disk_mib
            result.counting_disk_mib = counted
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        stop_process(server)
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


async def counting_population(address: str, count: int, in_flight: int) -> None:
    """``count`` idle counting workflows on the server at ``address``, each past its first
    workflow task."""
    print(f"baseline: {count:,} counting workflows", flush=True)
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    async with Worker(client, task_queue=COUNTING_QUEUE, workflows=[CountingWorkflow]):
        await start_counting(client, count, in_flight)
        await await_first_tasks(client, count, in_flight)


def report(result: IdleScaleResult) -> str:
    per_lead = result.server_disk_mib * MIB / result.leads / 1024
    per_counting = result.counting_disk_mib * MIB / result.leads / 1024
    lines = [
        f"leads                 {result.leads:,} (in flight {result.in_flight})",
        f"started in            {result.start_seconds:.1f} s "
        f"({result.starts_per_second:.0f} leads/s)",
        f"all asleep after      {result.asleep_seconds:.1f} s",
        f"worker RSS idle       {result.worker_rss_idle_mib:.0f} MiB",
        f"worker RSS            {result.worker_rss_mib:.0f} MiB "
        f"(x{result.rss_ratio_to_idle:.2f} idle; peak {result.worker_peak_rss_mib:.0f} MiB)",
        "worker RSS by asleep  "
        + ", ".join(f"{n:,}: {mib:.0f} MiB" for n, mib in result.rss_by_population),
        f"server disk           {result.server_disk_mib:.0f} MiB ({per_lead:.1f} KiB per lead)",
        f"counting, as many     {result.counting_disk_mib:.0f} MiB "
        f"({per_counting:.1f} KiB per workflow; lead / counting "
        f"{per_lead / per_counting if per_counting else float('nan'):.2f})",
        f"read model disk       {result.read_model_disk_mib:.0f} MiB",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--in-flight", type=int, default=200, help="concurrent starts")
    parser.add_argument("--keep", type=Path, help="keep the data here")
    parser.add_argument("--results", type=Path, help="JSON file (default bench/results/)")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.leads, args.in_flight, args.keep))
    result.machine = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    print(report(result), flush=True)
    out = save_results(
        asdict(result), args.results, f"idle-scale-{args.leads}-{datetime.now(UTC):%Y-%m-%d}.json"
    )
    print(f"results: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    exit_now(main())
