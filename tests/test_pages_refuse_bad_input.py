"""The pages and the reports API answer bad input with a 4xx that says what is wrong, never a
500 (issue 13): report periods at the ends of what ``datetime`` holds, the inbox's own link
used as an action, amounts that add up to infinity, cross-site form posts; and every HTML page
carries the same security headers. The real service over real HTTP; no Temporal is needed for
any of these answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client
from typer.testing import CliRunner

from activities.records import write_batches
from nurture.access.auth import create_key
from nurture.access.consent import LinkSigner, UnsubscribeClaim
from nurture.access.dashboard_links import DashboardLinks
from nurture.access.rep_links import RepClaim, RepLinks
from nurture.cli import app as cli_app
from nurture.contract.ledger import FactBatch, LeadSnapshot
from nurture.reports import Report, ReportQuery, run_report
from nurture.reports.base import ReportTable, format_duration
from nurture.reports.dashboard import _influence, _time_in_stage, build_dashboard
from nurture.store.campaigns import list_campaigns, record_cost
from nurture.store.db import make_engine
from nurture.store.read_model import CampaignCost
from nurture.web.app import WebSettings, create_app
from nurture.web.security import PAGE_HEADERS
from tests.conftest import TEST_SECRET

REPORTS = ("funnel", "sla", "returns", "influence", "cost")
FAR_EDGES = (
    {"since": "0001-01-01T00:00:00+14:00"},
    {"until": "9999-12-31T23:59:59-14:00"},
    {"since": "0001-01-01"},
    {"until": "9999-12-31"},
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def http(engine: Engine) -> Iterator[TestClient]:
    app = create_app(cast(Client, None), engine, LinkSigner(secret=TEST_SECRET), WebSettings())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def bearer(engine: Engine, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(engine, role, role)[1]}"}  # type: ignore[arg-type]


def test_report_periods_beyond_sane_dates_are_a_422_everywhere(
    engine: Engine, http: TestClient
) -> None:
    """Finding 12: since/until at the ends of datetime's range (with +14:00/-14:00 offsets)
    are refused by the one check the reports API, the charts API and the dashboard share."""
    marketer = bearer(engine, "marketer")
    dashboard = DashboardLinks(TEST_SECRET, "http://testserver").url()
    for params in FAR_EDGES:
        for name in REPORTS:
            answer = http.get(f"/api/reports/{name}", params=params, headers=marketer)
            assert answer.status_code == 422, (name, params, answer.text)
            assert "outside the dates reports cover" in answer.json()["detail"]
        charts = http.get("/api/dashboard/charts", params=params, headers=marketer)
        assert charts.status_code == 422, (params, charts.text)
        assert "outside the dates reports cover" in charts.json()["detail"]
        page = http.get(dashboard, params=params)
        assert page.status_code == 422, (params, page.text[:300])
        assert "outside the dates reports cover" in page.text
    with pytest.raises(ValueError, match="from 1970-01-01 to 2200-01-01"):
        ReportQuery(since=datetime(1, 1, 1, tzinfo=UTC))
    sane = http.get("/api/reports/cost", params={"since": "2026-11-01"}, headers=marketer)
    assert sane.status_code == 200
    # Both ends the message names are accepted (found trying it from outside: until=2200-01-01
    # was refused by a message that offered it); a moment beyond either is not.
    ends = {"since": "1970-01-01", "until": "2200-01-01"}
    assert http.get("/api/reports/funnel", params=ends, headers=marketer).status_code == 200
    for params in ({"until": "2200-01-01T00:00:01Z"}, {"since": "1969-12-31T23:59:59Z"}):
        assert http.get("/api/reports/funnel", params=params, headers=marketer).status_code == 422


def test_the_inbox_link_used_as_an_action_is_a_404_page(http: TestClient) -> None:
    """Finding 12: ``GET /inbox/{inbox token}/inbox`` was an AssertionError (500)."""
    token = RepLinks(TEST_SECRET, "http://testserver").token(RepClaim("ana", "inbox"))
    for action in ("inbox", "nonsense", "won"):
        answer = http.get(f"/inbox/{token}/{action}")
        assert answer.status_code == 404, (action, answer.text[:300])
        assert "text/html" in answer.headers["content-type"]


def test_huge_amounts_are_refused_and_sums_stay_finite(engine: Engine, http: TestClient) -> None:
    """Finding 16: two costs of 1e308 made ``total_cost: null`` and a tile "USD inf"."""
    marketer = bearer(engine, "marketer")
    huge = http.post(
        "/api/campaigns/big/costs", json={"month": "2026-11", "amount": 1e308}, headers=marketer
    )
    assert huge.status_code == 422, huge.text
    assert "amount" in str(huge.json()["detail"])
    cli = CliRunner().invoke(
        cli_app,
        ["campaign", "cost", "big", "--month", "2026-11", "--amount", "1e308"],
        env={"NURTURE_DATABASE_URL": str(engine.url)},
    )
    assert cli.exit_code != 0 and "from 0 to" in cli.output, cli.output
    # A deal amount has the same bound from the command line (refused before reaching a lead).
    for amount in ("1e13", "nan", "inf"):
        outcome = CliRunner().invoke(
            cli_app, ["outcome", "ada", "--rep", "alice", "won", "--amount", amount]
        )
        assert outcome.exit_code == 2 and "--amount" in outcome.output, (amount, outcome.output)
    record_cost(engine, "big", 1e12, month="2026-11")  # the largest amount is accepted

    # Amounts entered before they were bounded: the sums say "unknown", never inf or null
    # where a number is promised.
    with Session(engine) as session:
        for month in (10, 12):
            session.add(
                CampaignCost(
                    campaign="big",
                    period_start=date(2026, month, 1),
                    period_end=date(2026, month, 28),
                    amount=1e308,
                )
            )
        session.commit()
    (big,) = list_campaigns(engine)
    assert big.total_cost is None
    listed = http.get("/api/campaigns", headers=marketer)
    assert listed.status_code == 200 and listed.json()[0]["total_cost"] is None
    report = http.get("/api/reports/cost", headers=marketer)
    assert report.status_code == 422 and "beyond what can be counted" in report.json()["detail"]
    dashboard = build_dashboard(engine, ReportQuery())
    tiles = {t.id: t.value for t in dashboard.tiles}
    assert "inf" not in tiles["cost-per-deal"] and tiles["cost-per-deal"] == "–"
    assert any("beyond what can be counted" in p for p in dashboard.problems)


def test_a_campaign_with_no_cost_entered_has_an_unknown_cost_per_lead(engine: Engine) -> None:
    """Finding 29: no cost entered is unknown (None), not free (0.0)."""
    at = datetime(2026, 11, 3, tzinfo=UTC)
    write_batches(
        engine,
        [
            FactBatch(
                lead_id=lead,
                lead=LeadSnapshot(
                    lead_id=lead,
                    workflow_id=f"lead-{lead}",
                    version=1,
                    campaign=campaign,
                    stage="nurturing",
                    score=0,
                    grade="D",
                    stage_since=at,
                    created_at=at,
                    updated_at=at,
                ),
                facts=[],
            )
            for lead, campaign in (("c1", "unpriced"), ("c2", "priced"))
        ],
    )
    record_cost(engine, "priced", 300, month="2026-11")
    report = run_report(engine, "cost", ReportQuery())
    rows = {r["campaign"]: r for r in report.table("campaigns").as_dicts()}
    assert rows["priced"]["cost_per_lead"] == 300.0
    assert rows["unpriced"]["cost"] is None and rows["unpriced"]["cost_per_lead"] is None
    assert any("No cost is entered for unpriced" in note for note in report.notes)


def test_every_html_page_has_the_security_headers_and_cross_site_posts_are_refused(
    http: TestClient,
) -> None:
    """Finding 18: the inbox and /u/ pages lacked no-store, Referrer-Policy and framing
    protection; action POSTs had no Origin check."""
    inbox = RepLinks(TEST_SECRET, "http://testserver").token(RepClaim("ana", "inbox"))
    accept = RepLinks(TEST_SECRET, "http://testserver").token(RepClaim("ana", "accept", "l1"))
    unsubscribe = LinkSigner(secret=TEST_SECRET).token(UnsubscribeClaim("l1", "k"))
    dashboard = DashboardLinks(TEST_SECRET, "http://testserver").token()
    pages = [
        http.get(f"/inbox/{inbox}x"),  # a refused link is a page too
        http.get(f"/inbox/{inbox}/inbox"),
        http.get(f"/u/{unsubscribe}"),
        http.get("/u/damaged"),
        http.get(f"/dashboard/{dashboard}", params={"since": "2026-11-01"}),
        http.get("/dashboard/damaged"),
    ]
    for page in pages:
        assert "text/html" in page.headers["content-type"], page.url
        for name, value in PAGE_HEADERS.items():
            assert page.headers.get(name) == value, (page.url, name)
    assert "frame-ancestors 'none'" in pages[0].headers["content-security-policy"]
    api = http.get("/healthz")
    assert "x-frame-options" not in api.headers  # JSON answers are not pages

    evil = {"Origin": "https://evil.example"}
    cross = {"Sec-Fetch-Site": "cross-site"}
    posts = [
        (f"/inbox/{inbox}/leads/l1/accept", {}),
        (f"/inbox/{inbox}/leads/l1/reject", {"reason": "spam spam"}),
        (f"/inbox/{inbox}/leads/l1/won", {"amount": "100"}),
        (f"/inbox/{accept}/accept", {}),
        (f"/u/{unsubscribe}", {"List-Unsubscribe": "One-Click"}),
    ]
    for path, form in posts:
        for headers in (evil, cross):
            answer = http.post(path, data=form, headers=headers)
            assert answer.status_code == 403, (path, headers, answer.text[:300])
            assert "another site" in answer.text


def _report(name: str, table: str, columns: list[str], rows: list[list[object]]) -> Report:
    return Report(
        name=name,
        title=name,
        since=None,
        until=None,
        generated_at=datetime.now(UTC),
        tables=[ReportTable(name=table, title=table, columns=columns, rows=rows)],
    )


def test_charts_pick_a_time_unit_and_an_empty_subplot_says_no_data() -> None:
    """Finding 29: stays of seconds (under --time-scale) showed as 0.0 hours; an influence
    chart with no median days to close drew a made-up ``500m`` axis."""
    stays = _report(
        "funnel",
        "time_in_stage",
        ["stage", "stays", "median_hours", "p90_hours", "median", "p90"],
        [["assigned", 3, 12 / 3600, 40 / 3600, "12 s", "40 s"]],
    )
    chart = _time_in_stage({"funnel": stays})
    layout = chart.figure["layout"]
    assert layout["yaxis"]["title"]["text"] == "seconds"
    assert [round(v) for v in chart.figure["data"][0]["y"]] == [12]
    assert format_duration(12) == "12 s" and format_duration(5400) == "90 min"
    assert format_duration(30 * 3600) == "30 h" and format_duration(4 * 86400) == "4 d"

    deals = _report(
        "influence",
        "deals",
        [
            "group",
            "deals",
            "won",
            "lost",
            "win_rate",
            "won_amount",
            "avg_deal_size",
            "median_days_to_close",
        ],
        [["influenced", 2, 0, 2, 0.0, 0.0, None, None]],
    )
    figure = _influence({"influence": deals}).figure
    notes = [a["text"] for a in figure["layout"]["annotations"]]
    assert notes.count("no data yet") == 2  # average deal size and median days: nothing won
    assert figure["layout"]["yaxis3"]["visible"] is False


def test_with_no_cost_entered_cost_per_deal_is_unknown_not_zero(engine: Engine) -> None:
    """Finding 29: the dashboard tile said "Cost per deal 0" when no cost was entered."""
    at = datetime(2026, 11, 3, tzinfo=UTC)
    write_batches(
        engine,
        [
            FactBatch(
                lead_id="d1",
                lead=LeadSnapshot(
                    lead_id="d1",
                    workflow_id="lead-d1",
                    version=1,
                    campaign="webinar",
                    stage="nurturing",
                    score=0,
                    grade="D",
                    created_at=at,
                    updated_at=at,
                ),
                facts=[],
            )
        ],
    )
    summary = run_report(engine, "cost", ReportQuery()).summary
    assert summary["cost_per_lead"] is None and summary["cost_per_deal"] is None
    tiles = {t.id: t.value for t in build_dashboard(engine, ReportQuery()).tiles}
    assert tiles["cost-per-deal"] == "–"
