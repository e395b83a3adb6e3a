"""The returns and cost reports on SQLite and PostgreSQL, from hand-built fact batches written
the way lead workflows write them (``activities.records.write_batches``), and the campaigns
and costs marketers enter (``nurture.store.campaigns``, ``nurture campaign``, ``/api/campaigns``).

The acceptance test of the threshold recommendation: when low scores get returned it says to
raise the threshold; when returns do not depend on the score it does not."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from activities.records import write_batches
from nurture.access.auth import create_key
from nurture.cli import app as cli_app
from nurture.contract.ledger import FactBatch, HandoffFact, LeadSnapshot, OutcomeFact
from nurture.reports import Report, ReportQuery, run_report
from nurture.store.campaigns import CampaignError, list_campaigns, record_cost, save_campaign
from nurture.store.db import make_engine
from nurture.web.campaigns_api import CampaignsApi
from nurture.web.reports_api import ReportsApi
from nurture.web.responses import install_api_contract

T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)
DECIDED = {"accepted", "rejected", "won", "lost"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    db = make_engine(database_url)
    yield db
    db.dispose()


@dataclass(frozen=True)
class H:
    """One synthetic handoff (one lead each)."""

    score: int
    status: str
    instant: bool = False
    reason: str | None = None
    at: datetime = T0
    threshold: int = 50


def snapshot(
    lead: str, campaign: str | None = None, created_at: datetime = T0, version: int = 1
) -> LeadSnapshot:
    return LeadSnapshot(
        lead_id=lead,
        workflow_id=f"lead-{lead}",
        version=version,
        campaign=campaign,
        stage="mql",
        score=0,
        grade="C",
        created_at=created_at,
        updated_at=created_at,
    )


def handoff_fact(lead: str, h: H, number: int = 1) -> HandoffFact:
    return HandoffFact(
        key=f"{lead}:handoff:{number}",
        version=1,
        number=number,
        at=h.at,
        score=h.score,
        grade="B",
        threshold=h.threshold,
        instant=h.instant,
        qualified_by="requested a call" if h.instant else f"score {h.score}",
        status=h.status,  # type: ignore[arg-type]
        status_at=None if h.status == "open" else h.at + timedelta(hours=2),
        reject_reason=h.reason,
    )


def write_handoffs(engine: Engine, handoffs: list[H], prefix: str = "h") -> None:
    batches = []
    for i, h in enumerate(handoffs):
        lead = f"{prefix}{i}"
        batches.append(FactBatch(lead_id=lead, lead=snapshot(lead), facts=[handoff_fact(lead, h)]))
    write_batches(engine, batches)


def returns(engine: Engine, **query: object) -> Report:
    return run_report(engine, "returns", ReportQuery(**query))  # type: ignore[arg-type]


# --- the acceptance test: the recommendation moves the right way -------------------------------


def low_scores_returned() -> list[H]:
    """Threshold 50. Scores 50-69 are mostly returned (25 of 30 per band), 70+ one in ten."""
    population = []
    for score in range(50, 100):
        for i in range(3):
            low = score < 70
            rejected = (i < 2 or score % 2 == 0) if low else (score + i) % 10 == 0
            population.append(H(score, "rejected" if rejected else "accepted", reason="not ready"))
    return population


def returns_independent_of_score() -> list[H]:
    """Threshold 50. One handoff in ten is returned, whatever the score."""
    return [
        H(score, "rejected" if (score + i) % 10 == 0 else ("won" if i == 1 else "accepted"))
        for score in range(50, 100)
        for i in range(3)
    ]


def test_low_scores_returned_recommends_raising_the_threshold(engine: Engine) -> None:
    write_handoffs(engine, low_scores_returned())

    result = returns(engine, target_return_rate=0.25, min_handoffs=20)

    assert result.summary["current_threshold"] == 50
    assert result.summary["recommended_threshold"] == 70
    assert result.summary["recommendation"] == (
        "raise the threshold from 50 to 70: handoffs scoring 70+ were returned 10% of the time "
        "(target 25%) over 90 handoffs"
    )
    thresholds = {row[0]: row for row in result.table("thresholds").rows}
    assert thresholds[50] == [50, 150, 59, round(59 / 150, 4), False]
    assert thresholds[60] == [60, 120, 34, round(34 / 120, 4), False]
    assert thresholds[70] == [70, 90, 9, 0.1, True]


def test_returns_independent_of_score_keep_the_lowest_threshold(engine: Engine) -> None:
    write_handoffs(engine, returns_independent_of_score())

    result = returns(engine, target_return_rate=0.25, min_handoffs=20)

    assert result.summary["recommended_threshold"] == 50
    assert result.summary["recommendation"].startswith("keep the threshold at 50: ")
    assert all(row[4] is True for row in result.table("thresholds").rows)


def test_instant_handoffs_do_not_sway_the_recommendation(engine: Engine) -> None:
    """Requested-a-call handoffs scoring 20-39, all returned: every figure counts them but the
    threshold table, since no threshold would have stopped them."""
    instant = [H(20 + i, "rejected", instant=True, reason="just a student") for i in range(20)]
    write_handoffs(engine, [*returns_independent_of_score(), *instant])

    result = returns(engine, target_return_rate=0.25, min_handoffs=20)

    assert result.summary["handed_off"] == 170
    assert result.summary["rejected"] == 15 + 20
    assert result.summary["recommended_threshold"] == 50
    assert [row[0] for row in result.table("thresholds").rows] == [50, 60, 70, 80, 90]
    assert [row[0] for row in result.table("by_band").rows][:2] == ["20 to 29", "30 to 39"]
    assert any("instant handoffs (20 here)" in note for note in result.notes)


def test_never_recommends_below_the_lowest_score_handed_off(engine: Engine) -> None:
    """Threshold 65: nothing scoring 60-64 was ever handed off, so the 60 band's lower bound
    is no evidence for 60; the lowest threshold the history speaks for is 65."""
    population = [
        H(score, "rejected" if i == 0 and score % 5 == 0 else "accepted", threshold=65)
        for score in range(65, 100)
        for i in range(3)
    ]
    write_handoffs(engine, population)

    result = returns(engine, target_return_rate=0.25, min_handoffs=20)

    assert result.table("thresholds").rows[0][0] == 60
    assert result.summary["recommended_threshold"] == 65
    assert result.summary["recommendation"].startswith(
        "keep the threshold at 65: handoffs scoring 65+"
    )


def test_no_raise_when_every_handoff_already_clears_the_threshold(engine: Engine) -> None:
    """Threshold 50, scores moving in steps of 10 from 55, returned 10%: the lowest band meets
    the target, so the history argues for no raise (55 would only restate the lowest score)."""
    population = [
        H(score, "rejected" if i == 0 else "accepted", threshold=50)
        for score in (55, 65, 75)
        for i in range(10)
    ]
    write_handoffs(engine, population)

    result = returns(engine, target_return_rate=0.25, min_handoffs=20)

    assert result.summary["recommended_threshold"] == 50
    assert result.summary["recommendation"].startswith("keep the threshold at 50: ")


# --- exact figures, computed here independently -------------------------------------------------


def mixed_population() -> list[H]:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    reasons = ["not a buyer", "no budget", "bad timing", None, ""]
    population = [
        # before the period: not counted anywhere
        H(95, "rejected", reason="too early", at=since - timedelta(days=3)),
        H(55, "accepted", at=since - timedelta(seconds=1)),
        # an instant handoff with a negative score: band -10, never a threshold
        H(-5, "rejected", instant=True, reason="spam", at=since + timedelta(days=1)),
        H(12, "won", instant=True, at=since + timedelta(days=1)),
    ]
    statuses = ["rejected", "accepted", "open", "won", "lost", "rejected", "open"]
    for i in range(60):
        score = 40 + (i * 7) % 55  # 40..94
        status = statuses[(i * 3 + score) % len(statuses)]
        population.append(
            H(
                score,
                status,
                instant=i % 11 == 0,
                reason=reasons[i % len(reasons)] if status == "rejected" else None,
                at=since + timedelta(hours=5 * i),
                threshold=40 if i < 50 else 45,
            )
        )
    return population


def test_returns_figures_match_an_independent_count(engine: Engine) -> None:
    population = mixed_population()
    write_handoffs(engine, population)
    since, until = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    target, needed, width = 0.3, 4, 10

    result = returns(
        engine,
        since=since,
        until=until,
        target_return_rate=target,
        min_handoffs=needed,
        band_width=width,
    )

    period = [h for h in population if since <= h.at < until]
    rejected = [h for h in period if h.status == "rejected"]
    decided = [h for h in period if h.status in DECIDED]

    def rate(hs: list[H]) -> float | None:
        d = [h for h in hs if h.status in DECIDED]
        return round(sum(h.status == "rejected" for h in d) / len(d), 4) if d else None

    assert result.summary["handed_off"] == len(period) == 62
    assert result.summary["rejected"] == len(rejected)
    assert result.summary["return_rate"] == round(len(rejected) / len(decided), 4)
    assert result.summary["current_threshold"] == 45  # the latest handoff's
    assert result.summary["target_return_rate"] == target

    reasons = Counter((h.reason or "").strip() or "(no reason given)" for h in rejected)
    assert result.table("by_reason").rows == [
        [reason, n, round(n / len(rejected), 4)]
        for reason, n in sorted(reasons.items(), key=lambda rn: (-rn[1], rn[0]))
    ]

    bands = sorted({h.score // width * width for h in period})
    assert -10 in bands
    assert result.table("by_band").rows == [
        [
            f"{b} to {b + width - 1}",
            sum(h.score // width * width == b for h in period),
            sum(h.score // width * width == b for h in rejected),
            rate([h for h in period if h.score // width * width == b]),
        ]
        for b in bands
    ]

    scored = [h for h in period if not h.instant]
    expected_thresholds: list[list[Any]] = []
    for t in sorted({h.score // width * width for h in scored}):
        kept = [h for h in scored if h.score >= t]
        kept_decided = [h for h in kept if h.status in DECIDED]
        kept_rate = rate(kept)
        meets = (
            None if len(kept_decided) < needed else kept_rate is not None and kept_rate <= target
        )
        expected_thresholds.append(
            [t, len(kept), sum(h.status == "rejected" for h in kept), kept_rate, meets]
        )
    assert result.table("thresholds").rows == expected_thresholds
    meeting = [row[0] for row in expected_thresholds if row[4]]
    lowest = min(h.score for h in scored)
    expected = max(meeting[0], lowest) if meeting else None
    assert result.summary["recommended_threshold"] == expected


def test_open_handoffs_are_not_evidence(engine: Engine) -> None:
    """30 handoffs scoring 70-79, 25 still open: 5 decisions are too few for 20."""
    population = [H(70 + i % 10, "open" if i < 25 else "accepted") for i in range(30)]
    write_handoffs(engine, population)

    result = returns(engine, min_handoffs=20)

    assert result.summary["handed_off"] == 30
    assert result.summary["decided"] == 5
    assert result.summary["return_rate"] == 0.0
    assert result.table("thresholds").rows == [[70, 30, 0, 0.0, None]]
    assert result.summary["recommended_threshold"] is None
    assert result.summary["recommendation"].startswith(
        "too few handoffs to recommend a threshold: 5 handed off on score"
    )
    assert "at least 20 are needed" in result.summary["recommendation"]


def test_too_few_handoffs_or_no_threshold_meeting_the_target_give_no_recommendation(
    engine: Engine,
) -> None:
    write_handoffs(engine, [H(60 + i, "rejected" if i % 2 else "accepted") for i in range(10)])

    few = returns(engine, min_handoffs=20)
    assert few.summary["recommended_threshold"] is None
    assert "too few handoffs" in few.summary["recommendation"]

    enough = returns(engine, min_handoffs=5)
    assert enough.summary["recommended_threshold"] is None
    assert enough.summary["recommendation"].startswith("no threshold meets the target: ")

    empty = returns(engine, since=datetime(2030, 1, 1, tzinfo=UTC))
    assert empty.summary["handed_off"] == 0
    assert empty.summary["return_rate"] is None
    assert empty.summary["recommended_threshold"] is None
    assert empty.tables[0].rows == []


def test_no_threshold_meeting_the_target_names_a_promising_one_without_enough_evidence(
    engine: Engine,
) -> None:
    half_returned = [H(60 + i % 10, "rejected" if i % 2 else "accepted") for i in range(20)]
    write_handoffs(engine, [*half_returned, *[H(90, "accepted") for _ in range(5)]])

    result = returns(engine, min_handoffs=10)

    assert result.summary["recommended_threshold"] is None
    assert result.summary["recommendation"] == (
        "no threshold meets the target: even handoffs scoring 60+ were returned 40% of the time "
        "(target 25%) over 25 handoffs (handoffs scoring 90+ did, at 0%, but only 5 of them had "
        "a decision: 10 needed); look at why sales returns them rather than at the score"
    )
    assert [row[4] for row in result.table("thresholds").rows] == [False, None]


# --- cost ------------------------------------------------------------------------------------


def nov(day: int) -> datetime:
    return datetime(2026, 11, day, 10, tzinfo=UTC)


def write_cost_population(engine: Engine) -> None:
    """webinar: 3 leads in the first half of November (one worked after a first rejection,
    one won for 10,000, one rejected) and one from October, won; one lead with no campaign."""

    def batch(lead: str, campaign: str | None, created: datetime, *facts: object) -> FactBatch:
        return FactBatch(
            lead_id=lead,
            lead=snapshot(lead, campaign, created),
            facts=list(facts),  # type: ignore[arg-type]
        )

    write_batches(
        engine,
        [
            batch(
                "w1",
                "webinar",
                nov(2),
                handoff_fact("w1", H(70, "rejected", at=nov(3)), 1),
                handoff_fact("w1", H(80, "accepted", at=nov(8)), 2),
            ),
            batch(
                "w2",
                "webinar",
                nov(5),
                handoff_fact("w2", H(90, "won", at=nov(6))),
                OutcomeFact(key="w2:outcome:1", at=nov(20), result="won", amount=10_000, rep="al"),
            ),
            batch("w3", "webinar", nov(10), handoff_fact("w3", H(60, "rejected", at=nov(11)))),
            batch(
                "w4",
                "webinar",
                datetime(2026, 10, 20, tzinfo=UTC),
                handoff_fact("w4", H(90, "won", at=nov(1))),
                OutcomeFact(key="w4:outcome:1", at=nov(4), result="won", amount=2_000, rep="al"),
            ),
            batch("n1", None, nov(3), handoff_fact("n1", H(75, "open", at=nov(4)))),
            batch("n2", None, nov(16)),  # after the period
        ],
    )


def record_costs(engine: Engine) -> None:
    record_cost(engine, "webinar", 3000, month="2026-11")
    record_cost(engine, "webinar", 3000, month="2026-11")  # again: replaces, never doubles
    record_cost(engine, "ads", 3100, period_start=date(2026, 10, 16), period_end=date(2026, 11, 16))
    record_cost(engine, "social", 999, month="2026-12")


def test_cost_prorates_costs_and_divides_by_leads_opportunities_and_deals(
    engine: Engine,
) -> None:
    write_cost_population(engine)
    record_costs(engine)

    result = run_report(
        engine, "cost", ReportQuery(since=datetime(2026, 11, 1), until=datetime(2026, 11, 16))
    )

    table = result.table("campaigns")
    assert table.columns == [
        "campaign",
        "cost",
        "leads",
        "opportunities",
        "deals",
        "won_amount",
        "cost_per_lead",
        "cost_per_opportunity",
        "cost_per_deal",
    ]
    assert table.rows == [
        # 15 of the 31 days of 16 Oct - 16 Nov
        ["ads", 1500.0, 0, 0, 0, 0.0, None, None, None],
        # half of November: 15 of 30 days
        ["webinar", 1500.0, 3, 2, 1, 10_000.0, 500.0, 750.0, 1500.0],
        ["(none)", 0.0, 1, 0, 0, 0.0, 0.0, None, None],
    ]
    s = result.summary
    assert (s["cost"], s["leads"], s["opportunities"], s["deals"]) == (3000.0, 4, 2, 1)
    assert (s["cost_per_lead"], s["cost_per_opportunity"], s["cost_per_deal"]) == (
        750.0,
        1500.0,
        3000.0,
    )


def test_cost_reads_period_bounds_in_utc_whatever_their_offset(engine: Engine) -> None:
    """The same instant written with a +05:00 offset prorates the same cost."""
    write_cost_population(engine)
    record_costs(engine)
    utc = run_report(
        engine, "cost", ReportQuery(since=datetime(2026, 11, 15, 20, tzinfo=UTC))
    ).table("campaigns")
    shifted = run_report(
        engine,
        "cost",
        ReportQuery(since=datetime(2026, 11, 16, 1, tzinfo=timezone(timedelta(hours=5)))),
    ).table("campaigns")
    assert shifted.rows == utc.rows
    assert {row[0] for row in utc.rows} >= {"webinar", "social"}


def test_cost_over_all_time_counts_whole_cost_periods(engine: Engine) -> None:
    write_cost_population(engine)
    record_costs(engine)

    result = run_report(engine, "cost", ReportQuery())

    rows = {row[0]: row for row in result.table("campaigns").rows}
    assert rows["webinar"][1:6] == [3000.0, 4, 3, 2, 12_000.0]
    assert rows["ads"][1] == 3100.0
    assert rows["social"][1] == 999.0
    assert rows["(none)"][1:3] == [0.0, 2]
    assert result.summary["cost"] == 3000 + 3100 + 999


# --- campaigns as data -------------------------------------------------------------------------


def test_recording_costs_creates_campaigns_replaces_amounts_and_refuses_bad_input(
    engine: Engine,
) -> None:
    _, created = save_campaign(engine, "webinar", channel="events", description="Nov webinar")
    assert created
    first = record_cost(engine, "webinar", 3000, month="2026-11", note="inv 1")
    again = record_cost(engine, "webinar", 3500, month="2026-11", currency="usd")
    new = record_cost(
        engine, "ads", 100, period_start=date(2026, 11, 10), period_end=date(2026, 11, 20)
    )
    overlap = record_cost(
        engine, "ads", 50, period_start=date(2026, 11, 15), period_end=date(2026, 11, 25)
    )
    _, created = save_campaign(engine, "webinar", description="November webinar")

    assert not created
    assert (first.replaced, again.replaced, again.previous_amount) == (False, True, 3000.0)
    assert new.campaign_created and not first.campaign_created
    assert overlap.overlapping == ["2026-11-10 until 2026-11-20"]
    listed = {c.name: c for c in list_campaigns(engine)}
    assert (listed["webinar"].costs, listed["webinar"].total_cost) == (1, 3500.0)
    assert (listed["webinar"].channel, listed["webinar"].description) == (
        "events",
        "November webinar",
    )
    assert (listed["ads"].costs, listed["ads"].total_cost) == (2, 150.0)

    with pytest.raises(CampaignError, match="on or before it starts"):
        record_cost(engine, "ads", 1, period_start=date(2026, 11, 2), period_end=date(2026, 11, 2))
    with pytest.raises(CampaignError, match="from 0 to"):
        record_cost(engine, "ads", -1, month="2026-11")
    with pytest.raises(CampaignError, match="not a month"):
        record_cost(engine, "ads", 1, month="2026-13")
    with pytest.raises(CampaignError, match=r"a month .* or a start and an end"):
        record_cost(engine, "ads", 1, period_start=date(2026, 11, 2))


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_records_a_cost_and_reports_cost_as_csv(engine: Engine, database_url: str) -> None:
    write_cost_population(engine)
    runner = CliRunner()
    env = {"NURTURE_DATABASE_URL": database_url}

    added = runner.invoke(cli_app, ["campaign", "add", "webinar", "--channel", "events"], env=env)
    cost = runner.invoke(
        cli_app, ["campaign", "cost", "webinar", "--month", "2026-11", "--amount", "3000"], env=env
    )
    ads = runner.invoke(
        cli_app,
        [
            "campaign",
            "cost",
            "ads",
            "--from",
            "2026-10-16",
            "--until",
            "2026-11-16",
            "--amount",
            "3100",
        ],
        env=env,
    )
    report = runner.invoke(
        cli_app,
        ["report", "cost", "--csv", "--since", "2026-11-01", "--until", "2026-11-16"],
        env=env,
    )
    listed = runner.invoke(cli_app, ["campaign", "list", "--json"], env=env)
    backwards = runner.invoke(
        cli_app,
        [
            "campaign",
            "cost",
            "ads",
            "--from",
            "2026-11-02",
            "--until",
            "2026-11-01",
            "--amount",
            "1",
        ],
        env=env,
    )

    assert added.exit_code == 0, added.output
    assert cost.exit_code == 0, cost.output
    assert "webinar, 2026-11-01 until 2026-12-01: recorded 3,000.00 USD" in cost.output
    assert ads.exit_code == 0, ads.output
    assert report.exit_code == 0, report.output
    rows = list(csv.reader(io.StringIO(report.stdout)))
    assert rows[0][:3] == ["campaign", "cost", "leads"]
    assert rows[1:] == [
        ["ads", "1500.0", "0", "0", "0", "0.0", "", "", ""],
        ["webinar", "1500.0", "3", "2", "1", "10000.0", "500.0", "750.0", "1500.0"],
        ["(none)", "0.0", "1", "0", "0", "0.0", "0.0", "", ""],
    ]
    assert listed.exit_code == 0, listed.output
    assert {c["name"]: c["total_cost"] for c in json.loads(listed.stdout)} == {
        "ads": 3100.0,
        "webinar": 3000.0,
    }
    assert backwards.exit_code == 2
    assert "on or before it starts" in backwards.output


# --- HTTP --------------------------------------------------------------------------------------


@pytest.fixture
def http(engine: Engine) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    app = FastAPI()
    install_api_contract(app)
    app.include_router(CampaignsApi(engine).router())
    app.include_router(ReportsApi(engine).router())
    keys = {
        role: {"Authorization": f"Bearer {create_key(engine, role, role)[1]}"}  # type: ignore[arg-type]
        for role in ("marketer", "operator", "ingest")
    }
    keys["rep"] = {"Authorization": f"Bearer {create_key(engine, 'rep', 'al', rep_id='al')[1]}"}
    with TestClient(app) as client:
        yield client, keys


def test_http_campaigns_and_costs(
    engine: Engine, http: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    client, keys = http

    put = client.put("/api/campaigns/webinar", json={"channel": "events"}, headers=keys["marketer"])
    put_again = client.put(
        "/api/campaigns/webinar", json={"description": "Nov"}, headers=keys["operator"]
    )
    cost = client.post(
        "/api/campaigns/webinar/costs",
        json={"month": "2026-11", "amount": 3000},
        headers=keys["marketer"],
    )
    cost_again = client.post(
        "/api/campaigns/webinar/costs",
        json={"period_start": "2026-11-01", "period_end": "2026-12-01", "amount": 3000},
        headers=keys["marketer"],
    )
    new_campaign = client.post(
        "/api/campaigns/ads/costs",
        json={"period_start": "2026-10-16", "period_end": "2026-11-16", "amount": 3100},
        headers=keys["operator"],
    )
    listed = client.get("/api/campaigns", headers=keys["marketer"])

    assert put.status_code == 201, put.text
    assert put.json()["channel"] == "events"
    assert put_again.status_code == 200
    assert (put_again.json()["channel"], put_again.json()["description"]) == ("events", "Nov")
    assert cost.status_code == 201, cost.text
    assert cost.json()["replaced"] is False
    assert cost_again.status_code == 200
    assert (cost_again.json()["replaced"], cost_again.json()["previous_amount"]) == (True, 3000)
    assert new_campaign.status_code == 201
    assert new_campaign.json()["campaign_created"] is True
    assert [(c["name"], c["costs"], c["total_cost"]) for c in listed.json()] == [
        ("ads", 1, 3100.0),
        ("webinar", 1, 3000.0),
    ]


def test_http_reports_read_the_costs(
    engine: Engine, http: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    client, keys = http
    write_cost_population(engine)
    record_costs(engine)

    anonymous = client.get("/api/reports/cost")
    ingest = client.get("/api/reports/cost", headers=keys["ingest"])
    report = client.get(
        "/api/reports/cost",
        params={"since": "2026-11-01T00:00:00Z", "until": "2026-11-16T00:00:00Z"},
        headers=keys["marketer"],
    )
    csv_report = client.get(
        "/api/reports/returns",
        params={"format": "csv", "table": "thresholds"},
        headers=keys["operator"],
    )

    assert (anonymous.status_code, ingest.status_code) == (401, 403)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["summary"]["cost"] == 3000.0
    assert body["summary"]["cost_per_lead"] == 750.0  # 3 webinar leads and 1 without a campaign
    assert csv_report.status_code == 200, csv_report.text
    assert csv_report.text.splitlines()[0] == "threshold,handoffs,rejected,return_rate,meets_target"


def test_http_campaigns_refuse_missing_keys_wrong_roles_and_bad_costs(
    http: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = http
    costs = "/api/campaigns/webinar/costs"
    good = {"month": "2026-11", "amount": 10}

    assert client.get("/api/campaigns").status_code == 401
    assert client.post(costs, json=good).status_code == 401
    bogus = {"Authorization": "Bearer nk_0123456789_" + "x" * 43}
    assert client.get("/api/campaigns", headers=bogus).status_code == 401
    assert client.get("/api/campaigns", headers=keys["rep"]).status_code == 403
    assert client.post(costs, json=good, headers=keys["ingest"]).status_code == 403
    assert client.put("/api/campaigns/x", json={}, headers=keys["rep"]).status_code == 403

    negative = client.post(costs, json={**good, "amount": -5}, headers=keys["marketer"])
    backwards = client.post(
        costs,
        json={"period_start": "2026-11-02", "period_end": "2026-11-01", "amount": 1},
        headers=keys["marketer"],
    )
    bad_month = client.post(costs, json={**good, "month": "Nov"}, headers=keys["marketer"])
    no_period = client.post(costs, json={"amount": 1}, headers=keys["marketer"])
    bad_currency = client.post(costs, json={**good, "currency": "$"}, headers=keys["marketer"])
    assert negative.status_code == 422
    assert backwards.status_code == 422
    assert "on or before it starts" in backwards.json()["detail"]
    assert bad_month.status_code == 422
    assert bad_month.json()["errors"][0]["loc"][-1] == "month"
    assert no_period.status_code == 422
    assert [e["loc"] for e in no_period.json()["errors"]] == [
        ["body", "period_start"],
        ["body", "period_end"],
    ]
    assert bad_currency.status_code == 422

    # The schema's oneOf, held: a month or a period, never both, no null, no unknown field;
    # and nothing the schema allows is a 500 (a month in year 0 or 9999 was one).
    period = {"period_start": "2026-11-01", "period_end": "2026-12-01"}
    refused = {
        "both": {**good, **period},
        "null month": {**good, "month": None},
        "null end": {"amount": 1, "period_start": "2026-11-01", "period_end": None},
        "misspelt": {**good, "notes": "x"},
        "a string amount": {**good, "amount": "10"},
        "a long note": {**good, "note": "x" * 2001},
        "year 0": {**good, "month": "0000-05"},
        "year 9999": {**good, "month": "9999-12"},
        "before 1970": {"amount": 1, "period_start": "0001-01-01", "period_end": "2026-01-01"},
        "after 2200": {"amount": 1, "period_start": "2026-01-01", "period_end": "9999-12-31"},
    }
    for what, body in refused.items():
        answer = client.post(costs, json=body, headers=keys["marketer"])
        assert answer.status_code == 422, (what, answer.text)
    assert "outside the dates costs cover" in answer.json()["detail"]
    both = client.post(costs, json=refused["both"], headers=keys["marketer"])
    assert both.json()["errors"] == [
        {
            "loc": ["body"],
            "msg": "give a month or a period_start and period_end, not both",
            "type": "value_error",
        }
    ]
    huge = client.post(costs, json={**good, "amount": 1e13}, headers=keys["marketer"])
    assert huge.json()["errors"][0]["loc"] == ["body", "amount"]  # as sent: no union tag
    not_an_object = client.post(costs, json=[None, None], headers=keys["marketer"])
    assert not_an_object.status_code == 422
    assert "a cost is a JSON object" in not_an_object.json()["detail"]
    assert client.get("/api/campaigns", headers=keys["marketer"]).json() == []
    edges = {"amount": 1, "period_start": "1970-01-01", "period_end": "2200-01-01"}
    assert client.post(costs, json=edges, headers=keys["marketer"]).status_code == 201
    last = client.post(costs, json={**good, "month": "2199-12"}, headers=keys["marketer"])
    assert last.status_code == 201, last.text
