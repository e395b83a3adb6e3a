"""Reports at scale: every registered report over a synthetic population (100,000 leads and
1,000,000 events by default), on SQLite and PostgreSQL, timed against a baseline measured in
the same run.

    .venv/bin/python -m bench.reports_at_scale [--leads 100000 --events 1000000]
        [--database sqlite|postgresql|both] [--keep DIR] [--runs 3] [--explain]
        [--try-indexes] [--results FILE]

For each database: load the population with ``activities.records.write_batches`` (the
writer the lead workflows use), then run each report for all time and for one month (October
2026): once (first run, "cold": a fresh engine) and ``--runs`` more times (warm; the median
counts). The baseline is a full scan of the events, ``SELECT count(*), sum(points) FROM
leadevent``, timed the same way; each report's time is given as a ratio to it, so the figures
compare across machines and loads. Timings are never asserted: ``tests/test_bench_smoke.py``
only checks that every report returns rows at a tiny size.

``--explain`` prints the query plan of each report's slowest statements; ``--try-indexes``
then creates ``CANDIDATE_INDEXES`` (those the read model does not have yet) and times every
report again, so an index's effect is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from activities.records import write_batches
from bench.population import END, NOW, Population, Stats, provider_events
from bench.saving import RESULTS_DIR, save_results
from nurture.reports import REPORTS, ReportQuery, run_report
from nurture.reports.tables import WEBHOOK_EVENT
from nurture.store.db import make_engine

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BASELINE_SQL = "SELECT count(*), sum(points) FROM leadevent"
LEAD_COUNT_SQL = "SELECT count(*) FROM lead"
PERIODS: dict[str, tuple[datetime | None, datetime | None]] = {
    "all": (None, None),
    "month": (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),
}
#: Indexes ``--try-indexes`` adds (if missing) to measure their effect on the reports, with
#: the statement each one is for.
CANDIDATE_INDEXES: dict[str, str] = {
    # (touch (lead_id, status, at), tried here first, is in the read model now: -15/-30 %
    # on the influence report)
    # funnel: a lead's first transition (ORDER BY at, key LIMIT 1) without sorting
    "ix_bench_transition_lead_at_key": 'stagetransition (lead_id, at, "key")',
    # influence: time in stage of each deal's lead up to the outcome, from the index alone
    "ix_bench_transition_lead_at_stay": (
        "stagetransition (lead_id, at, from_stage, seconds_in_from_stage)"
    ),
    # cost: leads sales worked (handoff status) and won amounts, from the index alone
    "ix_bench_handoff_status_lead": "handoff (status, lead_id)",
    "ix_bench_outcome_result_lead": "outcome (result, lead_id, amount)",
}

console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)


# --- options -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reports_at_scale",
        description="Time every registered report over a synthetic population.",
    )
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="write the SQLite file into DIR and keep it (and keep the PostgreSQL database)",
    )
    parser.add_argument(
        "--postgres-admin",
        default=os.environ.get("NURTURE_TEST_POSTGRES", DEFAULT_ADMIN_URL),
        help="an admin URL to create and drop the benchmark database with",
    )
    parser.add_argument("--chunk", type=int, default=2000, help="leads per load transaction")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes generating the population (default: one per CPU; same rows whatever)",
    )
    parser.add_argument("--runs", type=int, default=3, help="warm runs per report (median)")
    parser.add_argument("--explain", action="store_true", help="print slow statements' plans")
    parser.add_argument(
        "--try-indexes",
        nargs="?",
        const=",".join(CANDIDATE_INDEXES),
        metavar="NAME,…",
        help="then create these CANDIDATE_INDEXES (default: all) and time every report again",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help=f"JSON results file (default: {RESULTS_DIR.name}/reports-<date>.json)",
    )
    options = parser.parse_args(argv)
    if options.leads < 1 or options.events < options.leads:
        parser.error("--events must be at least --leads (one event per lead at least)")
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    if options.workers < 1:
        parser.error("--workers must be at least 1")
    if options.try_indexes is not None:
        options.try_indexes = [n.strip() for n in options.try_indexes.split(",") if n.strip()]
        unknown = sorted(set(options.try_indexes) - set(CANDIDATE_INDEXES))
        if unknown:
            parser.error(
                f"no candidate index {', '.join(unknown)}; they are: {', '.join(CANDIDATE_INDEXES)}"
            )
    return options


# --- databases ---------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str
    describe: str
    drop: Callable[[], None] = lambda: None
    info: dict[str, Any] = field(default_factory=dict)


@contextmanager
def sqlite_database(keep: Path | None) -> Iterator[Database]:
    folder = keep or Path(tempfile.mkdtemp(prefix="nurture-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"nurture_bench_{os.getpid()}.db"
    for stale in (path, path.with_suffix(".db-wal"), path.with_suffix(".db-shm")):
        stale.unlink(missing_ok=True)
    database = Database("sqlite", f"sqlite:///{path}", str(path))
    database.info = {"version": sqlite3.sqlite_version, "file": str(path)}
    try:
        yield database
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            console.print(f"kept the SQLite database: {path}")


@contextmanager
def postgresql_database(admin_url: str, keep: bool) -> Iterator[Database]:
    name = f"nurture_bench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            version = conn.execute(text("SHOW server_version")).scalar()
        url = make_url(admin_url).set(database=name)
        database = Database(
            "postgresql", url.render_as_string(hide_password=False), f"database {name}"
        )
        database.info = {"version": version, "database": name}
        try:
            yield database
        finally:
            if keep:
                console.print(f"kept the PostgreSQL database: {name}")
            else:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --- loading -----------------------------------------------------------------------------------


def load(engine: Engine, population: Population, chunk: int, workers: int) -> dict[str, Any]:
    """Write the population through ``write_batches``, ``chunk`` leads per transaction, as
    ``workers`` processes generate it."""
    stats = Stats()
    with Session(engine) as session:
        session.add_all(population.campaigns())
        session.add_all(population.costs())
        session.commit()
    started = time.perf_counter()
    writing = 0.0
    with Progress(
        TextColumn("  loading"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} leads"),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
    ) as progress:
        task = progress.add_task("load", total=population.leads, rows=0)
        loaded = 0
        for batches in population.chunks(chunk, workers):
            for batch in batches:
                stats.add(batch)
            began = time.perf_counter()
            write_batches(engine, batches)
            events = [row for batch in batches for row in provider_events(batch)]
            if events:
                with engine.begin() as conn:
                    conn.execute(insert(WEBHOOK_EVENT), events)
            stats.rows["webhookevent"] += len(events)
            writing += time.perf_counter() - began
            progress.update(task, advance=len(batches), rows=stats.total_rows)
            loaded += len(batches)
            if not console.is_terminal and (loaded // chunk) % 10 == 0:
                console.print(
                    f"  loaded {loaded:,}/{population.leads:,} leads, "
                    f"{stats.total_rows:,} rows, {time.perf_counter() - started:.0f} s"
                )
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "writing_seconds": round(writing, 2),
        "generating_workers": workers,
        "rows": stats.total_rows,
        "rows_per_second": round(stats.total_rows / seconds),
        "rows_by_table": dict(sorted(stats.rows.items())),
        "leads_handed_off": stats.handed_off_leads,
        "instant_handoffs": stats.instant_handoffs,
        "handoffs_rejected": stats.rejected,
        "handoffs_won": stats.won,
        "handoffs_lost": stats.lost,
        "sla_turns": dict(sorted(stats.sla.items())),
    }


def settle(engine: Engine) -> None:
    """What a database that has lived a while has: statistics (PostgreSQL's autovacuum
    analyzes, and sets the visibility map index-only scans need). SQLite is left as
    ``make_engine`` leaves it: nothing in the engine runs ANALYZE there."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def database_size(engine: Engine, database: Database) -> int:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
    path = Path(database.info["file"])
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# --- timing ------------------------------------------------------------------------------------


class StatementLog:
    """The SQL each report ran, with the time each statement took."""

    def __init__(self, engine: Engine) -> None:
        self.statements: list[tuple[float, str, Any]] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        started = conn.info["bench_started"].pop()
        if self.on:
            self.statements.append((time.perf_counter() - started, statement, params))

    @contextmanager
    def capture(self) -> Iterator[list[tuple[float, str, Any]]]:
        self.statements, self.on = [], True
        try:
            yield self.statements
        finally:
            self.on = False


def timed(run: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """The first run's seconds, the median of ``runs`` more, and the first run's result."""
    began = time.perf_counter()
    result = run()
    first = time.perf_counter() - began
    warm = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        warm.append(time.perf_counter() - began)
    return first, statistics.median(warm), result


def scalar_query(engine: Engine, sql: str) -> Callable[[], Any]:
    def run() -> Any:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).one())

    return run


def query_for(period: str) -> ReportQuery:
    since, until = PERIODS[period]
    return ReportQuery(since=since, until=until, now=NOW)


def time_reports(
    engine: Engine, log: StatementLog, runs: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The baseline, then every registered report for every period."""
    first, warm, result = timed(scalar_query(engine, BASELINE_SQL), runs)
    baseline = {"sql": BASELINE_SQL, "first": first, "warm": warm, "result": result}
    first, warm, result = timed(scalar_query(engine, LEAD_COUNT_SQL), runs)
    lead_count = {"sql": LEAD_COUNT_SQL, "first": first, "warm": warm, "result": result}
    rows = []
    for name in sorted(REPORTS):
        for period in PERIODS:
            query = query_for(period)
            with log.capture() as statements:
                first, warm, report = timed(partial(run_report, engine, name, query), runs)
            per_statement: dict[str, dict[str, Any]] = {}
            for seconds, sql, params in statements:
                held = per_statement.setdefault(sql, {"sql": sql, "params": params, "runs": []})
                held["runs"].append(seconds)
            slowest = sorted(
                (
                    {
                        "seconds": statistics.median(s["runs"]),
                        "sql": s["sql"],
                        "params": s["params"],
                    }
                    for s in per_statement.values()
                ),
                key=lambda s: -s["seconds"],
            )
            rows.append(
                {
                    "report": name,
                    "period": period,
                    "first": first,
                    "warm": warm,
                    "ratio": warm / baseline["warm"],
                    "statements": len(per_statement),
                    "tables": {t.name: len(t.rows) for t in report.tables},
                    "summary": {k: _plain(v) for k, v in report.summary.items()},
                    "slowest": slowest[:3],
                }
            )
    return {"events": baseline, "leads": lead_count}, rows


def _plain(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


# --- plans and indexes -------------------------------------------------------------------------


def explain(engine: Engine, rows: list[dict[str, Any]], top: int = 2) -> dict[str, list[str]]:
    """The plan of the ``top`` slowest statements of each report and period."""
    plans: dict[str, list[str]] = {}
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN ANALYZE "
    for row in rows:
        for n, statement in enumerate(row["slowest"][:top]):
            with engine.connect() as conn:
                cursor = conn.exec_driver_sql(prefix + statement["sql"], statement["params"])
                lines = [
                    " | ".join(str(c) for c in r) if len(r) > 1 else str(r[0])
                    for r in cursor.fetchall()
                ]
            label = f"{row['report']} {row['period']} #{n + 1} ({statement['seconds']:.3f} s)"
            plans[label] = [statement["sql"], *lines]
            console.print(f"\n[bold]{label}[/bold]\n{statement['sql']}")
            for line in lines:
                console.print(f"  {line}")
    return plans


def create_candidate_indexes(engine: Engine, names: Sequence[str]) -> list[str]:
    created = []
    with engine.begin() as conn:
        for name in names:
            target = CANDIDATE_INDEXES[name]
            began = time.perf_counter()
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {target}"))
            created.append(f"{name} ON {target} ({time.perf_counter() - began:.1f} s)")
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    return created


# --- the run -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }


def bench_database(
    database: Database, population: Population, options: argparse.Namespace
) -> dict[str, Any]:
    console.print(
        f"\n[bold]{database.kind}[/bold] ({database.info['version']}): {database.describe}"
    )
    engine = make_engine(database.url)
    try:
        loaded = load(engine, population, options.chunk, options.workers)
        console.print(
            f"  loaded {loaded['rows']:,} rows in {loaded['seconds']:.1f} s "
            f"({loaded['rows_per_second']:,} rows/s; writing {loaded['writing_seconds']:.1f} s; "
            f"generated by {options.workers} process{'es' if options.workers > 1 else ''})"
        )
        settle(engine)
    finally:
        engine.dispose()
    engine = make_engine(database.url)  # a fresh engine: the first report runs are cold-ish
    try:
        log = StatementLog(engine)
        load_average = os.getloadavg()[0]
        baseline, rows = time_reports(engine, log, options.runs)
        result: dict[str, Any] = {
            "database": database.kind,
            "version": database.info["version"],
            "size_bytes": database_size(engine, database),
            "load": loaded,
            "load_average_before_timing": round(load_average, 2),
            "baseline": baseline,
            "reports": rows,
        }
        print_table(database.kind, baseline, rows)
        if options.explain:
            result["plans"] = explain(engine, rows)
        if options.try_indexes:
            console.print("\n  creating the candidate indexes …")
            result["candidate_indexes"] = create_candidate_indexes(engine, options.try_indexes)
            engine.dispose()
            baseline2, rows2 = time_reports(engine, log, options.runs)
            result["with_candidate_indexes"] = {"baseline": baseline2, "reports": rows2}
            print_table(f"{database.kind} with the candidate indexes", baseline2, rows2, rows)
            if options.explain:
                result["with_candidate_indexes"]["plans"] = explain(engine, rows2)
        return result
    finally:
        engine.dispose()


def print_table(
    title: str,
    baseline: dict[str, Any],
    rows: list[dict[str, Any]],
    before: list[dict[str, Any]] | None = None,
) -> None:
    events = baseline["events"]
    table = Table(
        title=f"{title}: baseline {events['sql']} = {events['warm']:.3f} s "
        f"(lead count {baseline['leads']['warm']:.4f} s)",
        title_justify="left",
    )
    for column in ("report", "period", "first s", "warm s", "× baseline", "rows per table"):
        table.add_column(column, justify="left" if column in ("report", "period") else "right")
    if before is not None:
        table.add_column("before s", justify="right")
    for n, row in enumerate(rows):
        cells = [
            row["report"],
            row["period"],
            f"{row['first']:.3f}",
            f"{row['warm']:.3f}",
            f"{row['ratio']:.2f}",
            " ".join(str(v) for v in row["tables"].values()),
        ]
        if before is not None:
            cells.append(f"{before[n]['warm']:.3f}")
        table.add_row(*cells)
    console.print(table)


def run(options: argparse.Namespace) -> dict[str, Any]:
    import nurture.reports  # noqa: F401  (registers every report)

    population = Population(options.leads, options.events, options.seed)
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "population": {
            "leads": options.leads,
            "events": options.events,
            "seed": options.seed,
            "until": END.isoformat(),
            "reports_now": NOW.isoformat(),
        },
        "periods": {k: [v.isoformat() if v else None for v in span] for k, span in PERIODS.items()},
        "runs": options.runs,
        "reports_registered": sorted(REPORTS),
        "databases": {},
    }
    console.print(
        f"{options.leads:,} leads, {options.events:,} events; reports: "
        + ", ".join(sorted(REPORTS))
    )
    kinds = ["sqlite", "postgresql"] if options.database == "both" else [options.database]
    for kind in kinds:
        if kind == "sqlite":
            with sqlite_database(options.keep) as database:
                results["databases"][kind] = bench_database(database, population, options)
        else:
            with postgresql_database(options.postgres_admin, options.keep is not None) as database:
                results["databases"][kind] = bench_database(database, population, options)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    results = run(options)
    path = save_results(results, options.results, f"reports-{results['date']}.json")
    console.print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
