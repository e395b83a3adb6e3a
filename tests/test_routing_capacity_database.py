"""Routing depth through the assignment activity, on SQLite and on the real PostgreSQL server:
open leads are counted from the recorded stage transitions (one query), reps who are away or
full are skipped without burning or double-giving round-robin turns, and when the whole pool
is unavailable the manager, then the fallback owner, gets the lead."""

from __future__ import annotations

import asyncio
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session
from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import RoutingActivities
from activities.routing import open_lead_counts
from nurture.contract.messages import AssignRequest
from nurture.domain.routing import RepLimits, rep_limits
from nurture.domain.rules import AwayPeriod
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import RoundRobinTurn, StageTransition, make_engine
from tests.conftest import TEST_RULES, lead_id, running_engine
from tests.test_cadence_rules import ROUTING

TODAY = date(2026, 12, 24)
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
XMAS = AwayPeriod(from_=date(2026, 12, 21), until=date(2027, 1, 3))


def history(
    engine: Engine,
    lead: str,
    *steps: tuple[str, str | None],
    same_time: bool = False,
    first: int = 1,
) -> None:
    """Record ``lead``'s transitions ``(to_stage, owner)`` as record_transition would, numbered
    from ``first``, one minute apart (or all at the same instant)."""
    with Session(engine) as session:
        previous: str | None = None
        for n, (stage, owner) in enumerate(steps, first):
            session.add(
                StageTransition(
                    key=f"{lead}:t{n}",
                    lead_id=lead,
                    workflow_id=f"lead-{lead}",
                    at=T0 if same_time else T0 + timedelta(minutes=n),
                    from_stage=previous,
                    to_stage=stage,
                    by="test",
                    reason="test",
                    score=0,
                    owner=owner,
                )
            )
            previous = stage
        session.commit()


def give(engine: Engine, rep: str, leads: int, prefix: str = "open") -> None:
    for n in range(leads):
        history(engine, f"{prefix}-{rep}-{n}", ("assigned", rep))


def request(
    n: int, candidates: list[str], reps: list[RepLimits], strategy: str = "round_robin"
) -> AssignRequest:
    return AssignRequest(
        key=f"assign:lead{n}:h1",
        lead_id=f"lead{n}",
        pool="pool",
        candidates=candidates,
        strategy=strategy,
        reps=reps,
        fallback_owner="maria",
    )


def turns_taken(engine: Engine, pool: str = "pool") -> int:
    with Session(engine) as session:
        row = session.get(RoundRobinTurn, pool)
        return row.turns if row else 0


def test_open_leads_are_those_whose_latest_transition_is_assigned_or_working(database_url):
    engine = make_engine(database_url)
    history(engine, "a1", ("assigned", "alice"))  # open
    history(engine, "a2", ("assigned", "alice"), ("working", "alice"))  # open
    history(engine, "a3", ("assigned", "alice"), ("working", "alice"), ("won", "alice"))
    history(engine, "a4", ("assigned", "alice"), ("recycled", "alice"))  # rejected
    history(engine, "a5", ("assigned", "alice"), ("assigned", "bob"))  # reassigned to bob
    history(engine, "a6", ("assigned", "bob"), ("working", "bob"), ("lost", None))
    # ten transitions at the same instant: t10 is the latest although "t10" < "t9" as text
    steps = [("assigned", "chen"), ("working", "chen")] * 4 + [
        ("assigned", "chen"),
        ("lost", "chen"),
    ]
    history(engine, "a7", *steps, same_time=True)
    history(engine, "a8", *steps[:9], same_time=True)  # t9 is the latest: assigned to chen
    history(engine, "a9", ("assigned", "dana"))
    with Session(engine) as session:
        counts = open_lead_counts(session, ["alice", "bob", "chen", "zoe"])
        assert counts == {"alice": 2, "bob": 1, "chen": 1}
        assert open_lead_counts(session, []) == {}


def test_open_leads_are_counted_with_one_query(database_url):
    engine = make_engine(database_url)
    give(engine, "alice", 3)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with Session(engine) as session:
            assert open_lead_counts(session, ["alice", "bob"]) == {"alice": 3}
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1 and "row_number()" in statements[0].lower()


def test_a_full_rep_is_skipped_without_burning_the_turn(database_url):
    engine = make_engine(database_url)
    routing = RoutingActivities(engine, today=lambda: TODAY)
    give(engine, "alice", 2)
    reps = [RepLimits(id="alice", max_open_leads=2), RepLimits(id="bob"), RepLimits(id="chen")]
    env = ActivityEnvironment()
    got = [
        env.run(routing.assign_rep, request(n, ["alice", "bob", "chen"], reps)) for n in range(6)
    ]
    assert got == ["bob", "bob", "chen", "bob", "bob", "chen"]
    assert turns_taken(engine) == 6  # one turn per lead: the rotation goes on where it was
    history(engine, "open-alice-0", ("working", "alice"), ("won", "alice"), first=2)
    assert env.run(routing.assign_rep, request(6, ["alice", "bob", "chen"], reps)) == "alice"


def test_skipping_under_concurrency_still_gives_every_turn_once(database_url):
    engine = make_engine(database_url)
    routing = RoutingActivities(engine, today=lambda: TODAY)
    reps = [RepLimits(id="alice", away=[XMAS]), RepLimits(id="bob"), RepLimits(id="chen")]
    env = ActivityEnvironment()

    def assign(n: int) -> str | None:
        return env.run(routing.assign_rep, request(n, ["alice", "bob", "chen"], reps))

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(assign, range(30)))
    # alice's turns (0, 3, 6…) go to bob, the next in the pool; bob's and chen's stay theirs
    assert (got.count("alice"), got.count("bob"), got.count("chen")) == (0, 20, 10)
    assert turns_taken(engine) == 30
    assert assign(7) == got[7]  # a retry returns the same rep and takes no turn
    assert turns_taken(engine) == 30


def test_when_the_pool_is_away_or_full_the_manager_then_the_fallback_owner_gets_it(database_url):
    engine = make_engine(database_url)
    env = ActivityEnvironment()
    eve = RoutingActivities(engine, today=lambda: date(2026, 12, 31))
    reps = rep_limits(ROUTING, ["ines", "gus"])  # ines away, gus capped at 2, manager nate
    give(engine, "gus", 2)
    with capture_logs() as logs:
        assert env.run(eve.assign_rep, request(1, ["ines", "gus"], reps)) == "nate"
    [entry] = [e for e in logs if e["event"] == "unavailable reps skipped"]
    assert entry["lead_id"] == "lead1" and entry["rep"] == "nate"
    assert entry["unavailable"] == {
        "ines": "ines is away (2026-12-21..2027-01-03)",
        "gus": "gus is at capacity (2/2 open leads)",
    }
    assert entry["reasons"][-1] == "every candidate is unavailable: nate (ines's manager)"

    nate_away = [r.model_copy(update={"away": [XMAS]}) if r.id == "nate" else r for r in reps]
    assert env.run(eve.assign_rep, request(2, ["ines", "gus"], nate_away)) == "maria"
    give(engine, "maria", 3)
    maria_full = [
        r.model_copy(update={"max_open_leads": 1}) if r.id == "maria" else r for r in nate_away
    ]
    assert env.run(eve.assign_rep, request(3, ["ines", "gus"], maria_full)) == "maria"

    back = RoutingActivities(engine, today=lambda: date(2027, 1, 4))
    with capture_logs() as logs:
        assert env.run(back.assign_rep, request(4, ["ines", "gus"], reps)) == "ines"
        assert env.run(back.assign_rep, request(5, ["ines", "gus"], reps)) == "ines"
    # turn 3 was gus's (still full): skipped for ines; turn 4 was ines's own
    skipped = [e for e in logs if e["event"] == "unavailable reps skipped"]
    assert [(e["lead_id"], e["reasons"]) for e in skipped] == [
        ("lead4", ["gus is at capacity (2/2 open leads)"])
    ]


def test_a_request_without_limits_skips_nobody(database_url):
    """Histories from before availability existed replay with no ``reps``: the old choice."""
    engine = make_engine(database_url)
    routing = RoutingActivities(engine, today=lambda: TODAY)
    give(engine, "alice", 5)
    env = ActivityEnvironment()
    old = request(1, ["alice", "bob"], []).model_copy(update={"fallback_owner": None})
    assert env.run(routing.assign_rep, old) == "alice"


def test_strategy_first_takes_no_turn_and_skips_to_the_first_available(database_url):
    engine = make_engine(database_url)
    routing = RoutingActivities(engine, today=lambda: TODAY)
    give(engine, "dana", 1)
    reps = [RepLimits(id="dana", max_open_leads=1), RepLimits(id="chen")]
    env = ActivityEnvironment()
    assert env.run(routing.assign_rep, request(1, ["dana", "chen"], reps, "first")) == "chen"
    assert turns_taken(engine) == 0


async def test_handoffs_skip_away_reps_and_fall_back_to_the_manager_end_to_end(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Through the workflow: alice is away today, so EMEA leads go to bob; with bob away too,
    to their manager maria. The state keeps who got the lead and why."""
    today = datetime.now(UTC).date()
    away = [{"from": str(today - timedelta(days=1)), "until": str(today + timedelta(days=1))}]
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    routing = yaml.safe_load((config / "routing.yaml").read_text())
    for rep in routing["reps"]:
        if rep["id"] == "alice":
            rep["away"] = away
    (config / "routing.yaml").write_text(yaml.safe_dump(routing))
    first, second = lead_id(), lead_id()
    async with running_engine(
        time_skipping_env.client, standin, tmp_path, config_dir=config
    ) as engine:
        await engine.profile(lead_id=first, email="e1@corp.example", region="EMEA")
        assert (await engine.request_call(first)).owner == "bob"
        for rep in routing["reps"]:
            if rep["id"] == "bob":
                rep["away"] = away
        (config / "routing.yaml").write_text(yaml.safe_dump(routing))
        await asyncio.sleep(1.2)  # the worker re-reads edited rules every second
        await engine.profile(lead_id=second, email="e2@corp.example", region="EMEA")
        state = await engine.request_call(second)
    assert state.owner == "maria"
    assert state.assignments[-1].rep == "maria"
