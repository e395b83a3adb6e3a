"""The marketing dashboard in a real headless Chromium (Debian's package, driven by Playwright):
a synthetic month of leads is written to the read model the way workflows write it
(``write_batches``); the signed link shows the headline figures and every chart drawn by
plotly.js served offline; an empty period says "no data yet"; expired and altered links are
refused. The page data is also checked on PostgreSQL. User text in charts stays text, touches
held by a broken template are listed, and no other site can frame the page."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from playwright.async_api import Browser, Page
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client
from typer.testing import CliRunner

from activities.records import write_batches
from nurture.access.auth import create_key
from nurture.access.consent import LinkSigner
from nurture.access.dashboard_links import DashboardLinks
from nurture.contract.ledger import (
    AssignmentFact,
    EventFact,
    Fact,
    FactBatch,
    HandoffFact,
    LeadSnapshot,
    OutcomeFact,
    TouchFact,
    TransitionFact,
)
from nurture.reports import ReportQuery, run_report
from nurture.reports.dashboard import NO_DATA, build_dashboard
from nurture.store.campaigns import record_cost
from nurture.store.db import make_engine
from nurture.store.read_model import TouchRecord
from nurture.store.rules_status import ROW, InForce, record_status
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import ARTIFACTS, TEST_SECRET

CHART_IDS = (
    "funnel",
    "time-in-stage",
    "sla-reps",
    "returns",
    "return-reasons",
    "influence",
    "cost",
)

# --- a synthetic month: October 2026, plus a few September leads outside the period -----------

PERIOD = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
REPS = ("ana", "ben", "chloe", "dev")
CAMPAIGN_COSTS = {"webinar-q4": 4_000.0, "paid-search": 9_000.0, "trade-show": 15_000.0}
REASONS = ("no budget", "wrong persona", "already a customer", "not reachable")
THRESHOLD = 50
SLA = timedelta(hours=4)


@dataclass
class Expected:
    """What the dashboard must show for October, counted here from the seeded lives."""

    created: int = 0
    handed_off: int = 0
    accepted: int = 0
    won: int = 0
    in_time: int = 0
    decided_turns: int = 0  # turns no longer open
    rejected: int = 0
    decided_handoffs: int = 0
    deals_of_paid_leads: int = 0
    reps: set[str] = field(default_factory=set)

    @property
    def compliance(self) -> float:
        return round(self.in_time / self.decided_turns, 4)

    @property
    def return_rate(self) -> float:
        return round(self.rejected / self.decided_handoffs, 4)

    @property
    def cost_per_deal(self) -> float:
        """Every campaign's spend over every deal of the period's leads (some came from no
        campaign: their deals count, at no cost)."""
        return round(sum(CAMPAIGN_COSTS.values()) / self.won, 2)


class Life:
    """One lead's life as its workflow would report it: facts in order and the final row."""

    def __init__(self, lead_id: str, created: datetime, campaign: str | None) -> None:
        self.lead_id, self.created, self.campaign = lead_id, created, campaign
        self.facts: list[Fact] = []
        self.stage, self.stage_since = "nurturing", created
        self.owner: str | None = None
        self.score = 10
        self.outcome: str | None = None
        self.amount: float | None = None
        self.closed_at: datetime | None = None
        self.stages_reached = {"nurturing"}
        self.touches_sent = 0
        self.facts.append(
            TransitionFact(
                key=f"{lead_id}:t0",
                at=created,
                from_stage=None,
                to_stage="nurturing",
                by="system",
                reason="created",
                score=0,
                owner=None,
            )
        )

    def move(self, to: str, at: datetime, by: str, reason: str, handoff: int | None = None) -> None:
        self.facts.append(
            TransitionFact(
                key=f"{self.lead_id}:t{len(self.facts)}",
                at=at,
                from_stage=self.stage,
                to_stage=to,
                by=by,
                reason=reason,
                score=self.score,
                owner=self.owner,
                seconds_in_from_stage=(at - self.stage_since).total_seconds(),
                handoff=handoff,
            )
        )
        self.stage, self.stage_since = to, at
        self.stages_reached.add(to)

    def batch(self) -> FactBatch:
        grade = "A" if self.score >= 80 else "B" if self.score >= 60 else "C"
        return FactBatch(
            lead_id=self.lead_id,
            lead=LeadSnapshot(
                lead_id=self.lead_id,
                workflow_id=f"lead-{self.lead_id}",
                version=len(self.facts),
                email=f"{self.lead_id}@example.com",
                name=self.lead_id.title(),
                company="Example Co",
                campaign=self.campaign,
                stage=self.stage,
                stage_since=self.stage_since,
                score=self.score,
                grade=grade,
                owner=self.owner,
                created_at=self.created,
                handoffs=sum(isinstance(f, HandoffFact) for f in self.facts),
                touches_sent=self.touches_sent,
                events=sum(isinstance(f, EventFact) for f in self.facts),
                outcome=self.outcome,
                amount=self.amount,
                closed_at=self.closed_at,
                updated_at=self.stage_since,
            ),
            facts=self.facts,
        )


def live(rng: random.Random, number: int, created: datetime, expected: Expected | None) -> Life:
    """A lead's life: nurture touches, maybe a handoff, the rep's SLA turn(s), a return or a
    deal. ``expected`` (None for leads outside the period) counts what the reports must find."""
    campaign = rng.choice([*CAMPAIGN_COSTS, None]) if number % 7 else None
    life = Life(f"dash-{number:03d}", created, campaign)
    life.facts.append(
        EventFact(
            key=f"{life.lead_id}:e1",
            at=created,
            received_at=created,
            type="form_fill",
            campaign=campaign,
            points=10,
            score_after=10,
        )
    )
    handoff_at = created + timedelta(hours=rng.uniform(30, 140))
    for step in range(rng.choice([0, 0, 1, 2, 3])):
        at = created + timedelta(hours=20 + 36 * step)
        life.touches_sent += 1
        life.facts.append(
            TouchFact(
                key=f"{life.lead_id}:touch{step}",
                at=at,
                cadence="default",
                step=f"step-{step + 1}",
                cycle=1,
                channel="email",
                status="sent",
            )
        )
    if number % 4 == 3:  # still being nurtured
        if expected:
            expected.created += 1
        return life
    instant = rng.random() < 0.12
    life.score = rng.randint(70, 95) if instant else rng.randint(THRESHOLD - 12, 99)
    rep = rng.choice(REPS)
    life.owner = rep
    life.move("assigned", handoff_at, "system", "score" if not instant else "requested_call", 1)
    handoff = HandoffFact(
        key=f"{life.lead_id}:h1",
        version=1,
        number=1,
        at=handoff_at,
        score=life.score,
        grade="A",
        threshold=THRESHOLD,
        instant=instant,
        qualified_by="requested_call" if instant else "score",
        campaign=campaign,
        rep=rep,
    )
    # The SLA turn: most reps answer in time; dev is often late; some turns are missed and the
    # lead goes to the next rep; a few are still open.
    draw = rng.random() + (0.25 if rep == "dev" else 0)
    turns: list[AssignmentFact] = []
    responder: str | None = rep
    respond_at: datetime | None
    if draw < 0.62:
        respond_at = handoff_at + timedelta(hours=rng.uniform(0.2, 3.5))
        turns.append(_turn(life, 1, rep, handoff_at, respond_at, misses=0))
    elif draw < 0.82:
        respond_at = handoff_at + timedelta(hours=rng.uniform(5, 11))
        turns.append(_turn(life, 1, rep, handoff_at, respond_at, misses=1))
    elif draw < 0.95 or rep == "dev":
        other = REPS[(REPS.index(rep) + 1) % len(REPS)]
        reassigned_at = handoff_at + SLA
        turns.append(_turn(life, 1, rep, handoff_at, None, misses=1, reassigned_to=other))
        respond_at = reassigned_at + timedelta(hours=rng.uniform(0.3, 2))
        turns.append(_turn(life, 2, other, reassigned_at, respond_at, misses=0))
        life.owner = responder = other
        handoff.rep = other
    else:
        respond_at = None
        turns.append(_turn(life, 1, rep, handoff_at, None, misses=0))
    life.facts.extend(turns)
    if expected:
        expected.created += 1
        expected.handed_off += 1
        for turn in turns:
            expected.reps.add(turn.rep)
            if turn.responded_at is None and turn.misses == 0:
                continue  # open
            expected.decided_turns += 1
            expected.in_time += turn.misses == 0 and turn.responded_at is not None
    if respond_at is not None and responder is not None:
        reject_odds = (
            0.2 if instant else 0.65 if life.score < 60 else 0.3 if life.score < 70 else 0.08
        )
        if rng.random() < reject_odds:
            handoff.status, handoff.status_at = "rejected", respond_at
            handoff.reject_reason = rng.choice(REASONS)
            handoff.rejected_by = responder
            life.move("recycled", respond_at, responder, "rejected", 1)
            life.owner = None
            if expected:
                expected.rejected += 1
        else:
            handoff.status, handoff.status_at = "accepted", respond_at
            life.move("working", respond_at, responder, "accepted", 1)
            close = rng.random()
            if close < 0.7:
                closed_at = respond_at + timedelta(days=rng.uniform(1, 6))
                won = close < 0.5
                influenced = any(isinstance(f, TouchFact) and f.at < handoff_at for f in life.facts)
                amount = round(rng.uniform(8_000, 40_000) * (1.6 if influenced else 1), 2)
                handoff.status = "won" if won else "lost"
                handoff.status_at = closed_at
                life.outcome, life.closed_at = handoff.status, closed_at
                life.amount = amount if won else None
                life.facts.append(
                    OutcomeFact(
                        key=f"{life.lead_id}:o1",
                        at=closed_at,
                        result="won" if won else "lost",
                        amount=life.amount,
                        rep=responder,
                        handoff=1,
                    )
                )
                life.move(handoff.status, closed_at, responder, "outcome", 1)
                if expected and won and campaign is not None:
                    expected.deals_of_paid_leads += 1
            if expected:
                expected.accepted += 1
                expected.won += life.stage == "won"
        if expected:
            expected.decided_handoffs += 1
    handoff.version = 3
    life.facts.insert(2, handoff)
    return life


def _turn(
    life: Life,
    number: int,
    rep: str,
    at: datetime,
    responded_at: datetime | None,
    misses: int,
    reassigned_to: str | None = None,
) -> AssignmentFact:
    return AssignmentFact(
        key=f"{life.lead_id}:a{number}",
        version=2,
        handoff=1,
        rep=rep,
        at=at,
        due_at=at + SLA,
        reason="round_robin" if number == 1 else "sla_miss",
        responded_at=responded_at,
        response=None if responded_at is None else "accept",
        seconds_to_response=None if responded_at is None else (responded_at - at).total_seconds(),
        misses=misses,
        first_missed_at=at + SLA if misses else None,
        escalations=1 if reassigned_to else 0,
        escalated_to="manager" if reassigned_to else None,
        reassigned_to=reassigned_to,
    )


def seed(engine: Engine, leads: int = 160) -> Expected:
    rng = random.Random(20261001)
    expected = Expected()
    lives = []
    for number in range(leads):
        # Created between 1 and 17 October, so every handoff and deal closes in October.
        created = PERIOD[0] + timedelta(hours=rng.uniform(0, 16 * 24))
        lives.append(live(rng, number, created, expected))
    for number in range(leads, leads + 8):  # September: outside the period
        lives.append(live(rng, number, PERIOD[0] - timedelta(days=20), None))
    write_batches(engine, [life.batch() for life in lives])
    for campaign, amount in CAMPAIGN_COSTS.items():
        record_cost(engine, campaign, amount, month="2026-10")
    return expected


# --- the page in Chromium ---------------------------------------------------------------------


@asynccontextmanager
async def web_service(engine: Engine) -> AsyncIterator[str]:
    """The real HTTP service. The dashboard needs no Temporal: nothing here calls the client."""
    app = create_app(cast(Client, None), engine, LinkSigner(secret=TEST_SECRET), WebSettings())
    async with serving(app, "127.0.0.1", 0) as url:
        yield url


class _EightDaysAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 8 * 86400


async def chart_traces(page: Page, chart: str) -> list[dict[str, Any]]:
    """The traces plotly drew in ``#chart``: type, name and how many points each has."""
    return cast(
        list[dict[str, Any]],
        await page.evaluate(
            """(id) => (document.getElementById(id).data || []).map((t) => ({
                type: t.type || "scatter",
                name: t.name || "",
                points: Math.max((t.x || []).length, (t.y || []).length),
                drawn: document.querySelectorAll(`#${id} .trace, #${id} .point`).length,
            }))""",
            chart,
        ),
    )


async def tile(page: Page, id: str) -> str:
    return (await page.locator(f"#tile-{id} .value").inner_text()).strip()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    yield engine
    engine.dispose()


async def test_the_dashboard_shows_every_chart_in_chromium(
    engine: Engine, browser: Browser
) -> None:
    expected = seed(engine)
    assert expected.rejected and expected.won and expected.deals_of_paid_leads  # a rich month
    async with web_service(engine) as url:
        links = DashboardLinks(TEST_SECRET, url)
        link = links.url()
        page = await browser.new_page(viewport={"width": 1360, "height": 900})
        answer = await page.goto(f"{link}?since=2026-10-01&until=2026-11-01")
        assert answer is not None and answer.status == 200
        assert answer.headers["cache-control"] == "private, no-store"
        await page.wait_for_function("document.body.dataset.plotted === 'true'", timeout=20_000)
        assert await page.locator("#period").inner_text() == "1 Oct 2026 – 31 Oct 2026"

        # Headline tiles: counted from the seeded lives, not from the reports.
        assert await tile(page, "leads-created") == f"{expected.created:,}"
        assert await tile(page, "handed-off") == f"{expected.handed_off:,}"
        assert await tile(page, "accepted") == f"{expected.accepted:,}"
        assert await tile(page, "won") == f"{expected.won:,}"
        assert await tile(page, "sla-compliance") == f"{expected.compliance:.1%}"
        assert await tile(page, "return-rate") == f"{expected.return_rate:.1%}"
        assert await tile(page, "cost-per-deal") == f"USD {expected.cost_per_deal:,.0f}"
        returns = run_report(engine, "returns", ReportQuery(since=PERIOD[0], until=PERIOD[1]))
        recommended = returns.summary["recommended_threshold"]
        assert recommended is not None, returns.summary["recommendation"]
        assert await tile(page, "recommended-threshold") == str(recommended)
        detail = await page.locator("#tile-recommended-threshold .detail").inner_text()
        assert returns.summary["recommendation"][1:] in detail
        assert f"the threshold at {THRESHOLD}" in detail or f"from {THRESHOLD}" in detail

        # Every chart drawn, each with data.
        for chart in CHART_IDS:
            assert await page.locator(f"#{chart}.plotted .main-svg").count(), chart
            traces = await chart_traces(page, chart)
            assert traces and all(t["points"] > 0 for t in traces), (chart, traces)
            assert sum(t["drawn"] for t in traces) > 0, chart
            assert NO_DATA not in await page.locator(f"#{chart}").inner_text(), chart
        funnel = await page.evaluate("document.getElementById('funnel').data[0].x")
        assert funnel == [expected.created, expected.handed_off, expected.accepted, expected.won]
        reps = await page.evaluate("document.getElementById('sla-reps').data[0].x")
        assert sorted(reps) == sorted(expected.reps)
        stacked = await page.evaluate(
            "document.getElementById('sla-reps').data.map((t) => t.y.reduce((a, b) => a + b, 0))"
        )
        sla = run_report(engine, "sla", ReportQuery(since=PERIOD[0], until=PERIOD[1]))
        assert sum(stacked) == sla.summary["received"]  # in time + late + missed + open
        influence = await page.evaluate(
            "[...new Set(document.getElementById('influence').data.map((t) => t.name))]"
        )
        assert influence == ["influenced", "not influenced"]
        shapes = await page.evaluate("document.getElementById('returns').layout.shapes.length")
        assert shapes >= 2  # the target line and the recommended threshold
        campaigns = await page.evaluate("document.getElementById('cost').data[0].x")
        assert sorted(campaigns) == sorted(CAMPAIGN_COSTS)

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        # On a phone: one column, nothing wider than the screen, the charts redrawn to fit.
        await page.set_viewport_size({"width": 400, "height": 860})
        await page.wait_for_timeout(500)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 400
        width = await page.evaluate("document.getElementById('cost').getBoundingClientRect().width")
        assert 300 < width <= 400
        await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        await page.set_viewport_size({"width": 1360, "height": 900})

        # The period picker is a plain GET form; a quiet period says so in every chart.
        await page.fill("input[name=since]", "2025-01-01")
        await page.fill("input[name=until]", "2025-02-01")
        await page.click("form.picker button")
        await page.wait_for_function("document.body.dataset.plotted === 'true'", timeout=20_000)
        assert "since=2025-01-01" in page.url and "until=2025-02-01" in page.url
        assert await tile(page, "leads-created") == "0"
        for chart in CHART_IDS:
            assert NO_DATA in await page.locator(f"#{chart}").inner_text(), chart
        await page.screenshot(path=str(ARTIFACTS / "dashboard-empty.png"), full_page=True)

        answer = await page.goto(f"{link}?since=2026-11-01&until=2026-10-01")
        assert answer is not None and answer.status == 422
        assert "must be before" in await page.locator("#error").inner_text()

        # Links: an altered one and an expired one are refused, with a clear message.
        tampered = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
        answer = await page.goto(tampered)
        assert answer is not None and answer.status == 403
        assert "damaged" in await page.locator("#message").inner_text()
        old = URLSafeTimedSerializer(TEST_SECRET, salt="dashboard", signer=_EightDaysAgo)
        answer = await page.goto(f"{url}/dashboard/{old.dumps({'days': 7})}")
        assert answer is not None and answer.status == 403
        assert "expired" in await page.locator("#message").inner_text()
        longer = links.url(timedelta(days=30))  # made for a month: still good after 8 days
        answer = await page.goto(longer)
        assert answer is not None and answer.status == 200
        other_salt = URLSafeTimedSerializer(TEST_SECRET, salt="nurture.rep-links.v1")
        answer = await page.goto(f"{url}/dashboard/{other_salt.dumps({'days': 7})}")
        assert answer is not None and answer.status == 403  # a rep link's signature won't do

        async with httpx.AsyncClient(base_url=url) as http:
            plotly_js = await http.get("/static/plotly.min.js")
            assert plotly_js.status_code == 200 and b"plotly.js" in plotly_js.content[:200]


async def test_the_charts_api_wants_a_marketer_or_operator_key(engine: Engine) -> None:
    seed(engine, leads=40)
    _, marketer = create_key(engine, "marketer", "embedding")
    _, rep = create_key(engine, "rep", "ana's key", "ana")
    async with web_service(engine) as url, httpx.AsyncClient(base_url=url) as http:
        params = {"since": "2026-10-01", "until": "2026-11-01"}
        assert (await http.get("/api/dashboard/charts", params=params)).status_code == 401
        refused = await http.get(
            "/api/dashboard/charts", params=params, headers={"Authorization": f"Bearer {rep}"}
        )
        assert refused.status_code == 403
        answer = await http.get(
            "/api/dashboard/charts", params=params, headers={"Authorization": f"Bearer {marketer}"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body["charts"]) == set(CHART_IDS)
        assert all(body["charts"][c]["figure"]["data"] for c in CHART_IDS)
        assert body["since"].startswith("2026-10-01")
        bad = await http.get(
            "/api/dashboard/charts",
            params={"since": "last week"},
            headers={"Authorization": f"Bearer {marketer}"},
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "since"]


def test_the_page_data_on_sqlite_and_postgresql(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        expected = seed(engine)
        dashboard = build_dashboard(engine, ReportQuery(since=PERIOD[0], until=PERIOD[1]))
    finally:
        engine.dispose()
    assert dashboard.problems == []
    tiles = {t.id: t.value for t in dashboard.tiles}
    assert tiles["leads-created"] == f"{expected.created:,}"
    assert tiles["won"] == f"{expected.won:,}"
    assert tiles["sla-compliance"] == f"{expected.compliance:.1%}"
    assert tiles["return-rate"] == f"{expected.return_rate:.1%}"
    assert tiles["cost-per-deal"] == f"USD {expected.cost_per_deal:,.0f}"
    for chart in dashboard.charts:
        assert not chart.empty and chart.figure["data"], chart.id


def test_dashboard_link_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from nurture.cli.app import app

    monkeypatch.setenv("NURTURE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("NURTURE_PUBLIC_URL", "https://nurture.example.com")
    result = CliRunner().invoke(app, ["dashboard-link", "--days", "14"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    match = re.fullmatch(r"https://nurture\.example\.com/dashboard/([\w.-]+)", url)
    assert match, url
    left = DashboardLinks(TEST_SECRET, "https://nurture.example.com").verify(match.group(1))
    assert timedelta(days=13, hours=23) < left <= timedelta(days=14)
    refused = CliRunner().invoke(app, ["dashboard-link", "--days", "0"])
    assert refused.exit_code == 2


PHISH = '<a href="https://evil.example/phish">Claim your <b>refund</b></a>'
FRAMER = """<!DOCTYPE html><title>Not Nurture</title>
<iframe id="dashboard" src="{dashboard}" width="800" height="300"></iframe>
<iframe id="control" src="{control}" width="800" height="100"></iframe>"""


@contextmanager
def serving_page(html: str) -> Iterator[str]:
    """Another site: ``html`` served at http://localhost:<port>/ by a real server."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def held_touch(lead: str, step: str, at: datetime, detail: str, sent: bool = False) -> list[Any]:
    """Read-model rows the workflow writes for a touch it held (and for it once sent)."""
    key = f"{lead}:default:{step}:1"
    rows = [
        TouchRecord(
            key=f"{key}:held",
            lead_id=lead,
            at=at,
            cadence="default",
            step=step,
            cycle=1,
            channel="email",
            status="held",
            detail=detail,
        )
    ]
    if sent:
        rows.append(
            TouchRecord(
                key=key,
                lead_id=lead,
                at=at + timedelta(hours=1),
                cadence="default",
                step=step,
                cycle=1,
                channel="email",
                status="sent",
            )
        )
    return rows


async def test_reject_reasons_are_plain_text_held_touches_show_and_no_framing_in_chromium(
    engine: Engine, browser: Browser
) -> None:
    """Finding 15: a reject reason with a link stays text in the plotly chart (no live link).
    Finding 3 (display): a touch held because its template cannot be rendered is listed with
    its reason until a sent row follows. Finding 18: another site cannot frame the page."""
    rng = random.Random(15)
    lives = [live(rng, n, PERIOD[0] + timedelta(hours=9 * n), None) for n in range(40)]
    phished = 0
    for life in lives:
        for fact in life.facts:
            if isinstance(fact, HandoffFact) and fact.status == "rejected":
                fact.reject_reason, phished = PHISH, phished + 1
    assert phished
    write_batches(engine, [life.batch() for life in lives])
    problem = "template enterprise/04_security.html line 3: 'rep_name' is undefined"
    with Session(engine) as session:
        session.add_all(held_touch("dash-001", "step-2", PERIOD[0] + timedelta(days=3), problem))
        session.add_all(
            held_touch("dash-002", "step-1", PERIOD[0], "fixed since", sent=True)  # released
        )
        session.commit()

    async with web_service(engine) as url:
        link = DashboardLinks(TEST_SECRET, url).url()
        page = await browser.new_page(viewport={"width": 1360, "height": 900})
        answer = await page.goto(f"{link}?since=2026-10-01&until=2026-11-01")
        assert answer is not None and answer.status == 200
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        await page.wait_for_function("document.body.dataset.plotted === 'true'", timeout=20_000)

        reasons = page.locator("#return-reasons")
        assert await reasons.locator(".main-svg").count()
        assert await page.locator("a[href*='evil.example']").count() == 0  # no live link
        assert await reasons.locator("a").count() == 0
        shown = await reasons.evaluate("(el) => el.textContent")
        assert 'href="https://evil.example/phish"' in shown  # the rep's words, as text

        held = await page.locator("#held").inner_text()
        assert held.startswith("1 touch held"), held
        assert "dash-001, default/step-2" in held and "'rep_name' is undefined" in held
        assert "dash-002" not in held  # sent since: no longer blocked
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-held-and-text.png"), full_page=True)

        # Another site frames the dashboard: the browser refuses; the control frame loads.
        # (That site is a real server on loopback: Chromium lets no public page frame it.)
        framer = FRAMER.format(dashboard=link, control=f"{url}/static/plotly.min.js")
        with serving_page(framer) as other_site:
            await page.goto(other_site)
            control = page.frame_locator("#control").locator("body")
            await control.wait_for(timeout=10_000)
            assert "plotly" in (await control.inner_text())[:2000]
            framed = page.frame_locator("#dashboard")
            await page.wait_for_timeout(500)
            assert await framed.locator("#period, .tile").count() == 0


def test_a_rejected_rules_edit_is_told_on_the_dashboard(engine: Engine) -> None:
    """Finding 3 (display): the dashboard says the last rules edit was rejected, from what
    the workers record (nurture.store.rules_status)."""
    in_force = InForce(ROW, "r-1234", datetime.now(UTC) - timedelta(minutes=5), "config")
    record_status(engine, in_force)
    problem = "templates/enterprise/04_security.html:3: 'rep_name' is undefined"
    record_status(engine, in_force, rejected=[problem])
    notice = build_dashboard(engine, ReportQuery()).rules_notice
    assert notice is not None
    assert notice.startswith("The last rules edit was rejected: templates/enterprise/04_")
    assert "r-1234" in notice
    record_status(engine, replace(in_force, loaded_at=datetime.now(UTC) + timedelta(seconds=1)))
    assert build_dashboard(engine, ReportQuery()).rules_notice is None
