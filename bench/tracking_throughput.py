"""Website tracking at scale (issue 16): page views per second the HTTP service accepts from
the tracker, against ``POST /api/events`` in the same run, and what an anonymous visitor costs
the database.

    .venv/bin/python -m bench.tracking_throughput [--events 2000 --visits 10 --concurrency 20]
        [--rounds 3] [--leads 200] [--visitors 2000] [--database sqlite|postgresql]
        [--postgres-admin URL] [--results FILE]

Processes as ``nurture up`` runs them: a Temporal dev server on its SQLite file, one
``worker.py`` (the shipped rules, each cadence's first touch moved a day out so leads only
score), one ``nurture serve`` (the HTTP service, one process), the SendGrid stand-in, and this
process sending with ``httpx`` (``--concurrency`` connections). The service's rate limits are
raised (``config/tracking.yaml`` in a copy of the config) so that the service is measured,
not the limiter: by default one address may make 1,200 tracking calls a minute.

Three kinds of traffic, the same shape each: ``--events`` page views per round, as sequences
of ``--visits`` calls one after the other (one visitor's, or one lead's, page views), one
event per call (a page view is one beacon), ``--concurrency`` sequences at once:

- **api**: ``POST /api/events`` with an ingest key, to ``--leads`` running leads (the baseline);
- **identified**: ``POST /t/{site_key}`` from the site's origin, for visitors already joined
  to those leads: their events go to the lead through the same ingest path (signal-with-start);
- **anonymous**: ``POST /t/{site_key}`` from new visitors: their events are kept in the
  ``visitor`` and ``visitorevent`` tables.

Rounds alternate the order of the kinds; after each kind the worker is drained (every lead
idle: ``describe``, no workflow task or activity pending), so a kind does not pay for the one
before it. Per kind: *accepted* page views/s (every call answered 2xx) and p50/p99 latency;
for api and identified also *processed* per second (until the leads applied every event).
Also the CPU time each process (service, worker, dev server) spent per page view over the send
and the drain (``/proc``): less moved by other load on the machine than rates are. Medians
over the rounds; the ratios are tracking / api, measured on the same server, the same worker
and the same database in the same minutes. Timings are never asserted:
``tests/test_bench_tracking_smoke.py`` runs this tiny and checks that it reports figures.

The cost of anonymous visitors: ``--visitors`` new visitors × ``--visits`` page views each,
through the service, the worker drained first; the database's growth over them: SQLite, the
file after ``VACUUM`` (and the pages of the two tables and their indexes, from ``dbstat``);
PostgreSQL, ``pg_total_relation_size`` of the two tables, as written and after
``VACUUM FULL``. Bytes per visitor and per event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.client import Client

from bench.engine_throughput import drain, machine, percentile
from bench.idle_scale import ROOT, free_port, sleeping_rules, start_worker
from bench.reports_at_scale import Database, postgresql_database
from bench.saving import save_results
from nurture.access.auth import create_key
from nurture.cli.embedded import EmbeddedOptions, start_dev_server, stop_process, wait_for_server
from nurture.domain.leads import workflow_id_for
from nurture.runtime.process import exit_now
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.tracking import create_site

KINDS = ("api", "identified", "anonymous")
SITE = "https://www.bench.example"
PAGES = ("/", "/blog/why-nurture", "/pricing", "/features", "/customers")
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
TRACKER_HEADERS = {"Origin": SITE, "User-Agent": BROWSER, "Content-Type": "text/plain"}
UNLIMITED = {"per_visitor": "1000000/minute", "per_ip": "100000000/minute"}
DEFAULT_POSTGRES_ADMIN = os.environ.get(
    "NURTURE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TRACKING_TABLES = ("visitor", "visitorevent")


# --- figures ----------------------------------------------------------------------------------


@dataclass
class Phase:
    kind: str
    round: int
    events: int
    send_s: float
    latencies_ms: list[float] = field(repr=False)
    statuses: Counter[int] = field(default_factory=Counter)
    drain_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds each process used over the send and the drain."""

    @property
    def accepted(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "round": self.round,
            "events": self.events,
            "accepted": self.accepted,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "send_s": round(self.send_s, 3),
            "drain_s": round(self.drain_s, 3),
            "accepted_per_s": round(self.accepted / self.send_s, 1),
            "processed_per_s": round(self.events / (self.send_s + self.drain_s), 1),
            "p50_ms": round(percentile(self.latencies_ms, 50), 1),
            "p99_ms": round(percentile(self.latencies_ms, 99), 1),
            "cpu_ms_per_event": {
                name: round(seconds * 1000 / max(1, self.events), 2)
                for name, seconds in self.cpu_s.items()
            },
        }


def medians(phases: Sequence[Phase]) -> dict[str, dict[str, Any]]:
    keys = ("accepted_per_s", "processed_per_s", "p50_ms", "p99_ms", "drain_s")
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        rows = [p.summary() for p in phases if p.kind == kind]
        if rows:
            by_kind[kind] = {k: round(statistics.median(r[k] for r in rows), 1) for k in keys}
            by_kind[kind]["cpu_ms_per_event"] = {
                name: round(statistics.median(r["cpu_ms_per_event"][name] for r in rows), 2)
                for name in rows[0]["cpu_ms_per_event"]
            }
    return by_kind


def ratios(by_kind: dict[str, dict[str, Any]]) -> dict[str, float]:
    api = by_kind["api"]
    return {
        "identified_accepted": round(
            by_kind["identified"]["accepted_per_s"] / api["accepted_per_s"], 3
        ),
        "anonymous_accepted": round(
            by_kind["anonymous"]["accepted_per_s"] / api["accepted_per_s"], 3
        ),
        "identified_processed": round(
            by_kind["identified"]["processed_per_s"] / api["processed_per_s"], 3
        ),
        **{
            f"{kind}_service_cpu": round(
                by_kind[kind]["cpu_ms_per_event"]["service"] / api["cpu_ms_per_event"]["service"],
                3,
            )
            for kind in ("identified", "anonymous")
            if api["cpu_ms_per_event"].get("service")
        },
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Processes:
    """The processes whose CPU time a phase reports, by name."""

    pids: dict[str, int]

    def snapshot(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def since(self, before: dict[str, float]) -> dict[str, float]:
        return {name: seconds - before[name] for name, seconds in self.snapshot().items()}


# --- the service's traffic --------------------------------------------------------------------


@dataclass
class Traffic:
    """What this process sends to the service."""

    http: httpx.AsyncClient
    site_key: str
    ingest_key: str
    leads: list[str]
    visitors: list[str]
    """``visitors[n]`` is joined to ``leads[n]``."""

    def call(self, kind: str, who: str, page: str) -> tuple[str, str, dict[str, str]]:
        """(path, body, headers) of one page view of ``who`` (a lead, or a visitor)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        url = f"{SITE}{page}"
        if kind == "api":
            body = {"lead_id": who, "type": "page_view", "url": url, "at": now}
            headers = {"Authorization": f"Bearer {self.ingest_key}"}
            return "/api/events", json.dumps(body), headers
        event = {"id": uuid.uuid4().hex, "type": "page_view", "at": now, "url": url}
        event["title"] = page.strip("/") or "home"
        body = {"visitor": who, "events": [event]}  # type: ignore[dict-item]
        return f"/t/{self.site_key}", json.dumps(body), TRACKER_HEADERS

    def who(self, kind: str, sequence: int, tag: str) -> str:
        if kind == "api":
            return self.leads[sequence % len(self.leads)]
        if kind == "identified":
            return self.visitors[sequence % len(self.visitors)]
        return f"anon-{tag}-{sequence:07d}-{uuid.uuid4().hex[:8]}"

    async def run(
        self, kind: str, round_: int, events: int, visits: int, concurrency: int, tag: str
    ) -> Phase:
        """``events`` page views as sequences of ``visits`` calls, ``concurrency`` at once."""
        sequences = iter(range(max(1, events // visits)))
        phase = Phase(kind, round_, 0, 0.0, [])

        async def sender() -> None:
            for sequence in sequences:
                who = self.who(kind, sequence, tag)
                for visit in range(visits):
                    path, body, headers = self.call(kind, who, PAGES[(sequence + visit) % 5])
                    started = time.perf_counter()
                    try:
                        answer = await self.http.post(path, content=body, headers=headers)
                        status = answer.status_code
                    except httpx.HTTPError:
                        status = 0
                    phase.latencies_ms.append((time.perf_counter() - started) * 1000)
                    phase.statuses[status] += 1
                    phase.events += 1

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        phase.send_s = time.perf_counter() - started
        return phase


# --- the database's size ---------------------------------------------------------------------


def checkpointed_vacuum(engine: Engine) -> None:
    """``VACUUM`` (SQLite) once the other processes let go, and the WAL folded in."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM"))
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sqlite_size(engine: Engine, path: Path) -> dict[str, int]:
    checkpointed_vacuum(engine)
    with engine.connect() as conn:
        pages = conn.execute(
            text(
                "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d "
                "JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name"
            )
        ).all()
    tables = {name: int(size) for name, size in pages}
    return {
        "file_bytes": path.stat().st_size,
        "tracking_tables_bytes": sum(tables.get(t, 0) for t in TRACKING_TABLES),
    }


def postgresql_size(engine: Engine) -> dict[str, int]:
    def total() -> int:
        with engine.connect() as conn:
            return sum(
                int(conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one())
                for t in TRACKING_TABLES
            )

    written = total()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM FULL {', '.join(TRACKING_TABLES)}"))
    return {"tracking_tables_bytes_as_written": written, "tracking_tables_bytes": total()}


def database_size(engine: Engine, db: Database) -> dict[str, int]:
    if db.kind == "postgresql":
        return postgresql_size(engine)
    return sqlite_size(engine, Path(db.describe))


def rows_kept(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in TRACKING_TABLES
        }


def cost(
    before: dict[str, int], after: dict[str, int], visitors: int, events: int
) -> dict[str, Any]:
    grown = {name: after[name] - before[name] for name in after}
    return {
        "before": before,
        "after": after,
        "grown": grown,
        "bytes_per_visitor": {k: round(v / visitors, 1) for k, v in grown.items()},
        "bytes_per_event": {k: round(v / events, 1) for k, v in grown.items()},
    }


# --- the processes ----------------------------------------------------------------------------


def bench_config(tmp: Path) -> Path:
    """The shipped rules with first touches a day out and no handoff (leads only score, as
    in ``bench.engine_throughput``: a handoff would land in whichever kind crosses the
    threshold), and rate limits out of the way."""
    config = sleeping_rules(tmp)
    scoring = yaml.safe_load((config / "scoring.yaml").read_text())
    scoring["sales_ready_threshold"] = 1_000_000
    (config / "scoring.yaml").write_text(yaml.safe_dump(scoring))
    (config / "tracking.yaml").write_text(yaml.safe_dump({"rate_limits": UNLIMITED}))
    return config


def start_service(
    tmp: Path, config: Path, address: str, db_url: str, port: int
) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "NURTURE_DATABASE_URL": db_url,
        "NURTURE_DATA_DIR": str(tmp),
        "NURTURE_CONFIG": str(config),
        "NURTURE_TEMPLATES": str(ROOT / "templates"),
        "NURTURE_LOG_FORMAT": "json",
    }
    environment.pop("SENDGRID_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "starter.py"), "serve", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=(tmp / "service.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def wait_until_ready(
    http: httpx.AsyncClient, service: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 60
    while True:
        if service.poll() is not None:
            raise RuntimeError(f"the HTTP service exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/healthz")).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the HTTP service never answered /healthz")
        await asyncio.sleep(0.2)


async def wait_for_worker(worker: subprocess.Popen[bytes], log: Path) -> None:
    while "worker ready" not in (log.read_text() if log.exists() else ""):
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited: {log.read_text()[-2000:]}")
        await asyncio.sleep(0.2)


@contextlib.contextmanager
def database(kind: str, tmp: Path, admin_url: str) -> Iterator[Database]:
    if kind == "postgresql":
        with postgresql_database(admin_url, keep=False) as db:
            yield db
        return
    path = tmp / "nurture.db"
    db = Database("sqlite", f"sqlite:///{path}", str(path))
    db.info = {"version": sqlite3.sqlite_version}
    yield db


# --- the run ------------------------------------------------------------------------------------


async def prepare(traffic: Traffic, client: Client, args: argparse.Namespace) -> None:
    """Running leads (``/api/leads``), each joined by one visitor (``identify`` with its id)."""
    for start in range(0, args.leads, 500):
        batch = [
            {"lead_id": lead, "email": f"{lead}@bench.example", "company_size": 200}
            for lead in traffic.leads[start : start + 500]
        ]
        answer = await traffic.http.post(
            "/api/leads", json=batch, headers={"Authorization": f"Bearer {traffic.ingest_key}"}
        )
        answer.raise_for_status()
    await drain(client, [workflow_id_for(lead) for lead in traffic.leads], args.concurrency)
    gate = asyncio.Semaphore(args.concurrency)

    async def join(visitor: str, lead: str) -> None:
        async with gate:
            answer = await traffic.http.post(
                f"/t/{traffic.site_key}/identify",
                content=json.dumps({"visitor": visitor, "lead_id": lead}),
                headers=TRACKER_HEADERS,
            )
            answer.raise_for_status()

    await asyncio.gather(
        *(join(v, lead) for v, lead in zip(traffic.visitors, traffic.leads, strict=True))
    )


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    config = bench_config(tmp)
    with database(args.database, tmp, args.postgres_admin) as db, SendGridStandIn() as standin:
        engine = make_engine(db.url)  # the schema, before any process opens it
        site = create_site(engine, "bench", [SITE])
        _, ingest_key = create_key(engine, "ingest", "bench")
        temporal_port, http_port = free_port(), free_port()
        address = f"127.0.0.1:{temporal_port}"
        server = start_dev_server(
            EmbeddedOptions(
                data_dir=tmp / "temporal",
                config_dir=config,
                templates_dir=ROOT / "templates",
                port=temporal_port,
                headless=True,
            )
        )
        worker = service = None
        try:
            client = await wait_for_server(address, server)
            worker = start_worker(tmp, config, address, db.url, standin.url)
            await wait_for_worker(worker, tmp / "worker.log")
            service = start_service(tmp, config, address, db.url, http_port)
            limits = httpx.Limits(max_connections=args.concurrency)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{http_port}", timeout=60, limits=limits
            ) as http:
                await wait_until_ready(http, service, tmp / "service.log")
                processes = Processes(
                    {"service": service.pid, "worker": worker.pid, "temporal": server.pid}
                )
                traffic = Traffic(
                    http,
                    site.site_key,
                    ingest_key,
                    leads=[f"bench-{n:05d}" for n in range(args.leads)],
                    visitors=[f"bench-visitor-{uuid.uuid4().hex}" for _ in range(args.leads)],
                )
                await prepare(traffic, client, args)
                lead_workflows = [workflow_id_for(lead) for lead in traffic.leads]
                for kind in KINDS:  # warm up every path (imports, caches, connections)
                    await traffic.run(kind, 0, args.concurrency, 1, args.concurrency, "warm")
                await drain(client, lead_workflows, args.concurrency)

                phases: list[Phase] = []
                for round_ in range(1, args.rounds + 1):
                    turn = (round_ - 1) % len(KINDS)
                    for kind in (*KINDS[turn:], *KINDS[:turn]):
                        cpu_before = processes.snapshot()
                        phase = await traffic.run(
                            kind, round_, args.events, args.visits, args.concurrency, f"r{round_}"
                        )
                        if kind != "anonymous":
                            phase.drain_s, _ = await drain(client, lead_workflows, args.concurrency)
                        phase.cpu_s = processes.since(cpu_before)
                        phases.append(phase)
                        print(f"  {json.dumps(phase.summary())}", flush=True)

                await drain(client, lead_workflows, args.concurrency)
                kept_before, before = rows_kept(engine), database_size(engine, db)
                cpu_before = processes.snapshot()
                cost_phase = await traffic.run(
                    "anonymous",
                    0,
                    args.visitors * args.visits,
                    args.visits,
                    args.concurrency,
                    "cost",
                )
                cost_phase.cpu_s = processes.since(cpu_before)
                kept_after, after = rows_kept(engine), database_size(engine, db)
        finally:
            for process in (service, worker):
                if process is not None:
                    process.terminate()
                    process.wait(30)
            stop_process(server)
            engine.dispose()

    by_kind = medians(phases)
    kept = {t: kept_after[t] - kept_before[t] for t in TRACKING_TABLES}
    return {
        "phases": [p.summary() for p in phases],
        "medians": by_kind,
        "ratios": ratios(by_kind),
        "anonymous_cost": {
            "visitors": args.visitors,
            "visits_per_visitor": args.visits,
            "rows_kept": kept,
            "throughput": cost_phase.summary(),
            **cost(before, after, args.visitors, args.visitors * args.visits),
        },
        "database": {"kind": db.kind, **db.info},
    }


def report(results: dict[str, Any]) -> str:
    settings, by_kind, ratio = results["settings"], results["medians"], results["ratios"]
    lines = [
        f"tracking throughput, {results['date']}: {settings['events']} page views per kind and "
        f"round ({settings['visits']} per visitor, one per call), {settings['concurrency']} at "
        f"once, median of {settings['rounds']}; {settings['leads']} leads; "
        f"{results['database']['kind']}; load average {results['machine']['load_average']} -> "
        f"{results['machine']['load_average_after']}",
        "",
        f"{'kind':12} {'accepted/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'processed/s':>11}"
        f"   CPU ms per event: {'service':>7} {'worker':>7} {'temporal':>8}",
    ]
    for kind, row in by_kind.items():
        processed = f"{row['processed_per_s']:>11.0f}" if kind != "anonymous" else f"{'-':>11}"
        cpu = row["cpu_ms_per_event"]
        lines.append(
            f"{kind:12} {row['accepted_per_s']:>10.0f} {row['p50_ms']:>7.0f} "
            f"{row['p99_ms']:>7.0f} {processed}   {'':17} {cpu['service']:>7.2f} "
            f"{cpu['worker']:>7.2f} {cpu['temporal']:>8.2f}"
        )
    lines += [
        "",
        f"identified / api, accepted: {ratio['identified_accepted']:.2f}; processed: "
        f"{ratio['identified_processed']:.2f}",
        f"anonymous / api, accepted: {ratio['anonymous_accepted']:.2f}",
        "the service's CPU per event over the api's: "
        f"identified {ratio.get('identified_service_cpu', 0):.2f}, "
        f"anonymous {ratio.get('anonymous_service_cpu', 0):.2f}",
    ]
    cost_ = results["anonymous_cost"]
    lines += [
        "",
        f"anonymous visitors kept: {cost_['visitors']:,} x {cost_['visits_per_visitor']} page "
        f"views (rows {cost_['rows_kept']}), "
        f"{cost_['throughput']['accepted_per_s']:.0f} accepted/s",
    ]
    for name in cost_["grown"]:
        lines.append(
            f"  {name}: {cost_['grown'][name]:,} bytes, {cost_['bytes_per_visitor'][name]:,.0f} "
            f"per visitor, {cost_['bytes_per_event'][name]:,.0f} per event"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="page views per kind and round")
    parser.add_argument("--visits", type=int, default=10, help="page views per visitor (or lead)")
    parser.add_argument("--concurrency", type=int, default=20, help="visitors sending at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leads", type=int, default=200, help="running leads, one visitor each")
    parser.add_argument(
        "--visitors", type=int, default=2000, help="anonymous visitors kept (the cost)"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-admin", default=DEFAULT_POSTGRES_ADMIN)
    parser.add_argument("--results", type=Path, help="JSON file (default: bench/results/...)")
    args = parser.parse_args(argv)
    if args.leads < 1 or args.events < args.visits or args.visits < 1:
        parser.error("--leads and --visits must be at least 1, --events at least --visits")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "settings": {
            name: getattr(args, name)
            for name in ("events", "visits", "concurrency", "rounds", "leads", "visitors")
        },
        "rate_limits": UNLIMITED,
    }
    with tempfile.TemporaryDirectory(prefix="nurture-tracking-bench-") as tmp:
        results |= asyncio.run(measure(args, Path(tmp)))
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(report(results))
    path = save_results(
        results, args.results, f"tracking-throughput-{args.database}-{results['date']}.json"
    )
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    exit_now(main(sys.argv[1:]))
