"""The funnel, sla and influence reports over a small hand-built read model, on SQLite and
PostgreSQL (the ``database_url`` fixture), and through ``nurture report`` and the HTTP API.

Every expected figure below was worked out by hand from the lives written here (the comments
show the arithmetic), never by calling report code. The period is March 2026:
[2026-03-01, 2026-04-01), ``until`` exclusive; rows just outside it are written on purpose.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from activities.records import write_batches
from nurture.access.auth import create_key
from nurture.contract.ledger import (
    AssignmentFact,
    Fact,
    FactBatch,
    HandoffFact,
    LeadSnapshot,
    OutcomeFact,
    TouchFact,
    TransitionFact,
)
from nurture.reports import Report, ReportQuery, run_report
from nurture.store.db import make_engine
from nurture.web.reports_api import ReportsApi

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
MARCH = ReportQuery(since=SINCE, until=UNTIL)


def day(month: int, d: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, d, hour, minute, second, tzinfo=UTC)


def lead_life(
    lead_id: str,
    created: datetime,
    moves: Sequence[tuple[datetime, str]] = (),
    facts: Sequence[Fact] = (),
) -> FactBatch:
    """A lead created in ``nurturing`` that moves to each (time, stage) in turn. As the workflow
    records them, the first transition has no ``seconds_in_from_stage``; every later one has the
    time since the move before."""
    transitions: list[Fact] = []
    stage, since = "nurturing", created
    for n, (at, to) in enumerate(moves, start=1):
        transitions.append(
            TransitionFact(
                key=f"{lead_id}:t{n}",
                at=at,
                from_stage=stage,
                to_stage=to,
                by="test",
                reason="test",
                score=0,
                owner=None,
                seconds_in_from_stage=None if n == 1 else (at - since).total_seconds(),
            )
        )
        stage, since = to, at
    snapshot = LeadSnapshot(
        lead_id=lead_id,
        workflow_id=f"lead-{lead_id}",
        version=1,
        stage=stage,
        stage_since=since,
        score=0,
        grade="D",
        created_at=created,
        updated_at=since,
    )
    return FactBatch(lead_id=lead_id, lead=snapshot, facts=[*transitions, *facts])


def handoff(
    lead_id: str, number: int, at: datetime, status: str = "open", touches_before: int = 0
) -> HandoffFact:
    return HandoffFact(
        key=f"{lead_id}:h{number}",
        version=1,
        number=number,
        at=at,
        score=80,
        grade="A",
        threshold=60,
        instant=False,
        qualified_by="score",
        rep="alice",
        status=status,  # type: ignore[arg-type]
        touches_before=touches_before,
    )


def touch(lead_id: str, n: int, at: datetime, status: str) -> TouchFact:
    return TouchFact(
        key=f"{lead_id}:touch{n}",
        at=at,
        cadence="welcome",
        step=f"step{n}",
        cycle=1,
        channel="email",
        status=status,  # type: ignore[arg-type]
    )


def outcome(
    lead_id: str, at: datetime, result: str, amount: float | None, number: int = 1
) -> OutcomeFact:
    return OutcomeFact(
        key=f"{lead_id}:outcome{number}",
        at=at,
        result=result,  # type: ignore[arg-type]
        amount=amount,
        rep="alice",
        handoff=number,
    )


def write(database_url: str, lives: list[FactBatch]) -> Any:
    engine = make_engine(database_url)
    write_batches(engine, lives)
    return engine


def rows(result: Report, table: str) -> list[list[Any]]:
    return result.table(table).rows


# --- funnel ------------------------------------------------------------------------------------

FUNNEL_LIVES = [
    # L1 (created in March): assigned, accepted after 2 h, won 168 h later.
    lead_life(
        "L1",
        day(3, 2),
        [(day(3, 3), "assigned"), (day(3, 3, 2), "working"), (day(3, 10, 2), "won")],
    ),
    # L2 (March): assigned, rejected after 24 h, 48 h recycled, assigned again, accepted 4 h
    # later, lost 264 h after that.
    lead_life(
        "L2",
        day(3, 5),
        [
            (day(3, 6), "assigned"),
            (day(3, 7), "recycled"),
            (day(3, 9), "assigned"),
            (day(3, 9, 4), "working"),
            (day(3, 20, 4), "lost"),
        ],
    ),
    # L3 (March) never moves; L4 (March) is suppressed.
    lead_life("L3", day(3, 10)),
    lead_life("L4", day(3, 15), [(day(3, 16), "suppressed")]),
    # L5 (February, not in the cohort): accepted exactly at `since` after 96 h assigned (in the
    # period), won exactly at `until` (outside it).
    lead_life(
        "L5",
        day(2, 20),
        [(day(2, 25), "assigned"), (day(3, 1), "working"), (day(4, 1), "won")],
    ),
    # L6: created in the period's last second, handed off after it: in the cohort, and it
    # reached assigned (the cohort counts what happened since, too).
    lead_life("L6", day(3, 31, 23, 59, 59), [(day(4, 2), "assigned")]),
    # L7 created exactly at `until`, L8 the second before `since`: neither in the period.
    lead_life("L7", day(4, 1)),
    lead_life("L8", day(2, 28, 23, 59, 59)),
]


def test_a_reassignment_is_no_entry_into_the_stage(database_url: str) -> None:
    """Handed off in February and reassigned after an SLA miss in March: in March it entered
    no stage (it was in ``assigned`` already)."""
    engine = write(
        database_url,
        [lead_life("R1", day(2, 20), [(day(2, 26), "assigned"), (day(3, 2), "assigned")])],
    )
    entered = dict(rows(run_report(engine, "funnel", MARCH), "entered"))
    assert entered["assigned"] == 0


def test_funnel_counts_stages_entries_cohort_and_stays(database_url: str) -> None:
    engine = write(database_url, FUNNEL_LIVES)
    result = run_report(engine, "funnel", MARCH)

    assert result.title == "Funnel"
    # Cohort L1 L2 L3 L4 L6; assigned: L1 L2 L6; working: L1 L2; won: L1; lost: L2.
    assert result.summary == {
        "leads_created": 5,
        "handed_off": 3,
        "accepted": 2,
        "won": 1,
        "lost": 1,
    }
    # Now: nurturing L3 L7 L8, assigned L6, won L1 L5, lost L2, suppressed L4.
    assert rows(result, "stages_now") == [
        ["nurturing", 3],
        ["recycled", 0],
        ["assigned", 1],
        ["working", 0],
        ["won", 2],
        ["lost", 1],
        ["suppressed", 1],
    ]
    # Entered in March: nurturing = the five new leads; assigned L1 L2 (L2 twice, one lead);
    # working L1 L2 L5 (at `since`); won L1 only (L5's is at `until`); L6's handoff is April.
    assert rows(result, "entered") == [
        ["nurturing", 5],
        ["recycled", 1],
        ["assigned", 2],
        ["working", 3],
        ["won", 1],
        ["lost", 1],
        ["suppressed", 1],
    ]
    assert result.table("conversion").columns == ["from", "to", "leads_from", "leads_to", "rate"]
    assert rows(result, "conversion") == [
        ["created", "assigned", 5, 3, 0.6],
        ["assigned", "working", 3, 2, 0.6667],
        ["working", "won", 2, 1, 0.5],
    ]
    # Stays ended in March (first moves carry no duration): recycled [48]; assigned
    # [2, 24, 4, 96] -> sorted 2 4 24 96: median rank 2 = 4, p90 rank 4 = 96; working
    # [168, 264] (L5's 744 ends at `until`): median rank 1 = 168, p90 rank 2 = 264.
    assert rows(result, "time_in_stage") == [
        ["recycled", 1, 48.0, 48.0, "48 h", "48 h"],
        ["assigned", 4, 4.0, 96.0, "4 h", "4 d"],
        ["working", 2, 168.0, 264.0, "7 d", "11 d"],
    ]
    assert result.notes


def test_funnel_time_in_stage_uses_nearest_rank_percentiles(database_url: str) -> None:
    # Ten leads accepted after 1..10 hours (written shuffled): nearest-rank median is the 5th
    # value (5 h, not 5.5) and p90 the 9th (9 h, not 9.1); 30 minutes shows the unit is hours.
    hours = [5, 1, 9, 3, 7, 10, 2, 8, 4, 6]
    lives = [
        lead_life(
            f"P{i}",
            day(1, 10),
            [(day(3, 2), "assigned"), (day(3, 2) + timedelta(hours=h), "working")],
        )
        for i, h in enumerate(hours)
    ]
    lives.append(
        lead_life(
            "Q",
            day(1, 10),
            [(day(3, 2), "assigned"), (day(3, 2, 0, 30), "working"), (day(3, 2, 1), "won")],
        )
    )
    result = run_report(write(database_url, lives), "funnel", MARCH)
    # assigned: 0.5 1 2 ... 10 (eleven stays): median rank ceil(5.5) = 6th = 5; p90 rank
    # ceil(9.9) = 10th = 9. working: Q's 0.5.
    engine = make_engine(database_url)
    assert rows(result, "time_in_stage") == [
        ["assigned", 11, 5.0, 9.0, "5 h", "9 h"],
        ["working", 1, 0.5, 0.5, "30 min", "30 min"],
    ]
    # The P stays alone (Q's assigned stay ended at 00:30, before `since`): 1..10, median
    # rank 5 = 5, p90 rank 9 = 9; Q's working stay ended at 01:00.
    late = run_report(engine, "funnel", ReportQuery(since=day(3, 2, 0, 31), until=UNTIL))
    assert rows(late, "time_in_stage") == [
        ["assigned", 10, 5.0, 9.0, "5 h", "9 h"],
        ["working", 1, 0.5, 0.5, "30 min", "30 min"],
    ]
    # `until` is exclusive: Q's assigned stay, ending at 00:30, is out until a second later.
    before = run_report(engine, "funnel", ReportQuery(since=SINCE, until=day(3, 2, 0, 30)))
    assert rows(before, "time_in_stage") == []
    just = run_report(engine, "funnel", ReportQuery(since=SINCE, until=day(3, 2, 0, 30, 1)))
    assert rows(just, "time_in_stage") == [["assigned", 1, 0.5, 0.5, "30 min", "30 min"]]


# --- sla ---------------------------------------------------------------------------------------


def turn(
    lead_id: str,
    rep: str,
    at: datetime,
    due: datetime | None,
    responded: datetime | None = None,
    misses: int = 0,
    escalations: int = 0,
    reassigned_to: str | None = None,
    number: int = 1,
) -> AssignmentFact:
    return AssignmentFact(
        key=f"{lead_id}:a{number}",
        version=1,
        handoff=1,
        rep=rep,
        at=at,
        due_at=due,
        reason="round robin",
        responded_at=responded,
        response="accept" if responded else None,
        seconds_to_response=(responded - at).total_seconds() if responded else None,
        misses=misses,
        first_missed_at=due if misses else None,
        escalations=escalations,
        reassigned_to=reassigned_to,
    )


def sla_lives() -> list[FactBatch]:
    def lead(lead_id: str, *turns: AssignmentFact) -> FactBatch:
        return lead_life(lead_id, day(2, 1), [(turns[0].at, "assigned")], list(turns))

    return [
        # alice: 60 and 210 minutes, in time (4 h SLA).
        lead("A1", turn("A1", "alice", day(3, 2, 10), day(3, 2, 14), day(3, 2, 11))),
        lead("A2", turn("A2", "alice", day(3, 3, 10), day(3, 3, 14), day(3, 3, 13, 30))),
        # alice misses A3 (escalated), it goes to bob, who answers in 30 minutes.
        lead(
            "A3",
            turn("A3", "alice", day(3, 4, 10), day(3, 4, 14), None, 1, 1, "bob"),
            turn("A3", "bob", day(3, 4, 14), day(3, 4, 18), day(3, 4, 14, 30), number=2),
        ),
        # alice answers A4 after a miss and an escalation: late, 300 minutes.
        lead("A4", turn("A4", "alice", day(3, 5, 10), day(3, 5, 14), day(3, 5, 15), 1, 1)),
        # alice has A5 still open (no answer, no miss yet).
        lead("A5", turn("A5", "alice", day(3, 30, 10), day(3, 30, 14))),
        # bob answers B2 five minutes after the deadline, before any miss was recorded: late,
        # 245 minutes.
        lead("B2", turn("B2", "bob", day(3, 6, 10), day(3, 6, 14), day(3, 6, 14, 5))),
        # Outside the period: a second before `since`, and exactly at `until`.
        lead("B3", turn("B3", "bob", day(2, 28, 23, 59, 59), day(3, 1, 4), day(3, 1, 3))),
        lead("B4", turn("B4", "bob", day(4, 1), day(4, 1, 4))),
        # carol: assigned exactly at `since` with no deadline; answers in 10 minutes: in time.
        lead("C1", turn("C1", "carol", day(3, 1), None, day(3, 1, 0, 10))),
    ]


def test_sla_per_rep_in_time_late_missed_open(database_url: str) -> None:
    result = run_report(write(database_url, sla_lives()), "sla", MARCH)

    assert result.title == "SLA compliance"
    assert result.table("reps").columns == [
        "rep",
        "received",
        "responded_in_time",
        "responded_late",
        "misses",
        "escalations",
        "reassigned_away",
        "open",
        "compliance",
        "median_minutes_to_response",
    ]
    assert rows(result, "reps") == [
        # 5 turns: in time A1 A2, late A4, missed A3 (away to bob), open A5. Compliance
        # 2 / (5 - 1 open); response minutes 60 210 300: median rank 2 = 210.
        ["alice", 5, 2, 1, 2, 2, 1, 1, 0.5, 210.0],
        # 2 turns (B3, B4 outside): in time A3, late B2; minutes 30 245: median rank 1 = 30.
        ["bob", 2, 1, 1, 0, 0, 0, 0, 0.5, 30.0],
        ["carol", 1, 1, 0, 0, 0, 0, 0, 1.0, 10.0],
    ]
    # 8 turns, 4 in time of the 7 not open; minutes 10 30 60 210 245 300: median rank 3 = 60.
    assert result.summary == {
        "received": 8,
        "responded_in_time": 4,
        "misses": 2,
        "compliance": 0.5714,
        "median_minutes_to_response": 60.0,
    }

    february = run_report(
        make_engine(database_url), "sla", ReportQuery(since=day(2, 1), until=SINCE)
    )
    # B3 alone: answered 3 h 0 min 1 s after the assignment = 180.02 minutes.
    assert rows(february, "reps") == [["bob", 1, 1, 0, 0, 0, 0, 0, 1.0, 180.02]]


def test_sla_a_turn_continues_its_rep_only_after_a_hand_back_in_the_same_handoff(
    database_url: str,
) -> None:
    """Leads from before issue 13 were "reassigned" to the rep who held them. A turn continues
    the rep's own when another turn of the same handoff and rep, begun no later (the same
    instant too, or before the period), handed the lead back to that rep; not the hand-back
    turn itself, nor a turn of another handoff or another rep."""
    lives = [
        lead_life(
            "H1",
            day(2, 1),
            [(day(2, 28, 22), "assigned")],
            [
                # Handed back to maria in February; her turn in March continues it.
                turn("H1", "maria", day(2, 28, 22), day(3, 1, 2), None, 1, 1, "maria"),
                turn("H1", "maria", day(3, 1, 2), day(3, 1, 6), day(3, 1, 3), number=2),
                # alice's turn on the same handoff is her own: 30 minutes, in time.
                turn("H1", "alice", day(3, 1, 4), day(3, 1, 8), day(3, 1, 4, 30), number=3),
            ],
        ),
        lead_life(
            "H2",
            day(2, 1),
            [(day(3, 2, 10), "assigned")],
            [
                # Missed and handed back to bob: received (its own hand-back is no earlier
                # one); a second turn begun the same instant continues it: late, 60 minutes.
                turn("H2", "bob", day(3, 2, 10), day(3, 2, 14), None, 1, 0, "bob"),
                turn("H2", "bob", day(3, 2, 10), day(3, 2, 14), day(3, 2, 11), number=2),
                # The next handoff to bob is a new lead received: 30 minutes, in time.
                turn(
                    "H2", "bob", day(3, 5, 10), day(3, 5, 14), day(3, 5, 10, 30), number=3
                ).model_copy(update={"handoff": 2}),
            ],
        ),
    ]
    engine = write(database_url, lives)

    march = run_report(engine, "sla", MARCH)
    assert rows(march, "reps") == [
        ["alice", 1, 1, 0, 0, 0, 0, 0, 1.0, 30.0],
        # Received H2 twice (the hand-back turn, the second handoff), one in time; the
        # continuation late; compliance 1 / 2; minutes 30 60: median rank 1 = 30.
        ["bob", 2, 1, 1, 1, 0, 0, 0, 0.5, 30.0],
        # Only the continuation of February's turn: nothing received, answered late.
        ["maria", 0, 0, 1, 0, 0, 0, 0, None, 60.0],
    ]
    # 3 received, 2 in time, none open; minutes 30 30 60 60: median rank 2 = 30.
    assert march.summary == {
        "received": 3,
        "responded_in_time": 2,
        "misses": 1,
        "compliance": 0.6667,
        "median_minutes_to_response": 30.0,
    }
    february = run_report(engine, "sla", ReportQuery(since=day(2, 1), until=SINCE))
    assert rows(february, "reps") == [["maria", 1, 0, 0, 1, 1, 0, 0, 0.0, None]]


# --- influence ---------------------------------------------------------------------------------


def deal(
    lead_id: str,
    created: datetime,
    handed: datetime,
    accepted_after_hours: float,
    closed: datetime,
    result: str,
    amount: float | None,
    touches: Sequence[tuple[datetime, str]] = (),
    after: Sequence[tuple[datetime, str]] = (),
) -> FactBatch:
    """A lead handed off once, accepted after some hours and closed; ``after``: moves after
    the outcome."""
    accepted = handed + timedelta(hours=accepted_after_hours)
    facts: list[Fact] = [touch(lead_id, n, at, status) for n, (at, status) in enumerate(touches)]
    facts += [handoff(lead_id, 1, handed, result), outcome(lead_id, closed, result, amount)]
    moves = [(handed, "assigned"), (accepted, "working"), (closed, result), *after]
    return lead_life(lead_id, created, moves, facts)


def influence_lives() -> list[FactBatch]:
    # R: handed off Feb 2, rejected Feb 3 (24 h assigned), 408 h recycled, handed off again
    # Feb 20 (touched on Feb 10, between the two handoffs), accepted after 8 h, won Mar 8
    # (Feb 20 08:00 -> Mar 8 00:00 = 376 h working); 35 days from creation.
    r_moves = [
        (day(2, 2), "assigned"),
        (day(2, 3), "recycled"),
        (day(2, 20), "assigned"),
        (day(2, 20, 8), "working"),
        (day(3, 8), "won"),
    ]
    r_facts: list[Fact] = [
        handoff("R", 1, day(2, 2), "rejected"),
        touch("R", 1, day(2, 10), "sent"),
        handoff("R", 2, day(2, 20), "won"),
        outcome("R", day(3, 8), "won", 1000, number=2),
    ]
    return [
        # Influenced. I1: sent Feb 5, won 1000 Mar 11, 38 days, 2 h assigned, 238 h working.
        deal("I1", day(2, 1), day(3, 1), 2, day(3, 11), "won", 1000, [(day(2, 5), "sent")]),
        # I2: a task queued Mar 1 and carried out Mar 2; won 3000 Mar 21, 20 days, 4 h / 428 h.
        deal(
            "I2",
            day(3, 1),
            day(3, 3),
            4,
            day(3, 21),
            "won",
            3000,
            [(day(3, 1, 1), "task"), (day(3, 2), "task_done")],
        ),
        # I3: sent Feb 12; lost Mar 15, 33 days, 6 h / 546 h.
        deal("I3", day(2, 10), day(2, 20), 6, day(3, 15), "lost", None, [(day(2, 12), "sent")]),
        lead_life("R", day(2, 1), r_moves, r_facts),
        # Not influenced. N1: skipped, failed and a task never done before the handoff, sent only
        # after it; won
        # 500 Mar 11, 10 days, 1 h / 215 h.
        deal(
            "N1",
            day(3, 1),
            day(3, 2),
            1,
            day(3, 11),
            "won",
            500,
            [
                (day(3, 1, 12), "skipped"),
                (day(3, 1, 13), "failed"),
                (day(3, 1, 14), "task"),  # queued, never done: no influence
                (day(3, 5), "sent"),
            ],
        ),
        # N2: no touches; won 1500 Mar 12, 7 days, 3 h / 165 h.
        deal("N2", day(3, 5), day(3, 5), 3, day(3, 12), "won", 1500),
        # N3: a suppressed touch only; lost Mar 20, 10 days, 5 h / 235 h; back to nurturing
        # on Mar 25 (120 h lost), after the outcome: not one of this deal's stays.
        deal(
            "N3",
            day(3, 10),
            day(3, 10),
            5,
            day(3, 20),
            "lost",
            None,
            [(day(3, 9), "suppressed")],
            [(day(3, 25), "nurturing")],
        ),
        # Outside the period: closed exactly at `until`, and a second before `since`.
        deal("X1", day(2, 1), day(3, 30), 0.5, day(4, 1), "won", 99999, [(day(2, 2), "sent")]),
        deal("X2", day(2, 1), day(2, 2), 1, day(2, 28, 23, 59, 59), "won", 7, []),
    ]


def test_influence_compares_touched_and_untouched_deals(database_url: str) -> None:
    result = run_report(write(database_url, influence_lives()), "influence", MARCH)

    assert result.title == "Marketing influence"
    assert result.table("deals").columns == [
        "group",
        "deals",
        "won",
        "lost",
        "win_rate",
        "won_amount",
        "avg_deal_size",
        "median_days_to_close",
    ]
    assert rows(result, "deals") == [
        # I1 I2 I3 R: won 1000 + 3000 + 1000 = 5000 over 3; days 20 33 35 38: rank 2 = 33.
        ["influenced", 4, 3, 1, 0.75, 5000.0, 1666.67, 33.0],
        # N1 N2 N3: won 500 + 1500 over 2; days 7 10 10: rank 2 = 10.
        ["not influenced", 3, 2, 1, 0.6667, 2000.0, 1000.0, 10.0],
    ]
    assert result.summary == {
        "influenced_deals": 4,
        "not_influenced_deals": 3,
        "avg_deal_size_ratio": 1.6667,  # 1666.67 / 1000
    }
    assert rows(result, "time_in_stage") == [
        ["influenced", "recycled", 1, 408.0],  # R
        ["influenced", "assigned", 5, 6.0],  # 2 4 6 8 24: rank 3
        ["influenced", "working", 4, 376.0],  # 238 376 428 546: rank 2
        ["not influenced", "assigned", 3, 3.0],  # 1 3 5: rank 2
        ["not influenced", "working", 3, 215.0],  # 165 215 235: rank 2
    ]
    assert any("influenced" in note for note in result.notes)


def test_influence_with_no_deals_has_both_groups_empty(database_url: str) -> None:
    engine = write(database_url, influence_lives())
    result = run_report(engine, "influence", ReportQuery(since=day(5, 1)))
    assert rows(result, "deals") == [
        ["influenced", 0, 0, 0, None, 0.0, None, None],
        ["not influenced", 0, 0, 0, None, 0.0, None, None],
    ]
    assert rows(result, "time_in_stage") == []
    assert result.summary["avg_deal_size_ratio"] is None


def test_influence_tie_at_the_handoff_instant_follows_the_workflows_count(
    database_url: str,
) -> None:
    """An email whose send completed in the same workflow task as the handoff has the handoff's
    timestamp: whether it came first is what the workflow counted (``touches_before``)."""
    handed = day(3, 2)

    def tied(lead_id: str, touches_before: int) -> FactBatch:
        facts: list[Fact] = [
            touch(lead_id, 0, handed, "sent"),
            handoff(lead_id, 1, handed, "won", touches_before=touches_before),
            outcome(lead_id, day(3, 9), "won", 100),
        ]
        moves = [(handed, "assigned"), (day(3, 3), "working"), (day(3, 9), "won")]
        return lead_life(lead_id, day(3, 1), moves, facts)

    result = run_report(
        write(database_url, [tied("before", 1), tied("after", 0)]), "influence", MARCH
    )
    assert [row[:2] for row in rows(result, "deals")] == [
        ["influenced", 1],
        ["not influenced", 1],
    ]


# --- command line and HTTP ---------------------------------------------------------------------


def test_report_command_prints_json_and_csv(database_url: str) -> None:
    from nurture.cli.app import app

    write(database_url, FUNNEL_LIVES)
    runner = CliRunner()
    env = {"NURTURE_DATABASE_URL": database_url}
    period = ["--since", "2026-03-01", "--until", "2026-04-01"]

    shown = runner.invoke(app, ["report", "funnel", *period, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["name"] == "funnel" and data["summary"]["leads_created"] == 5
    assert data["since"].startswith("2026-03-01T00:00:00")
    assert [t["name"] for t in data["tables"]] == [
        "stages_now",
        "entered",
        "conversion",
        "time_in_stage",
    ]

    table = runner.invoke(
        app, ["report", "funnel", *period, "--csv", "--table", "conversion"], env=env
    )
    assert table.exit_code == 0, table.output
    assert list(csv.reader(io.StringIO(table.stdout))) == [
        ["from", "to", "leads_from", "leads_to", "rate"],
        ["created", "assigned", "5", "3", "0.6"],
        ["assigned", "working", "3", "2", "0.6667"],
        ["working", "won", "2", "1", "0.5"],
    ]

    first = runner.invoke(app, ["report", "sla", "--csv"], env=env)  # no turns: header only
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0].startswith("rep,received,responded_in_time,")


@pytest.mark.parametrize("name", ["funnel", "sla", "influence"])
def test_reports_over_http(database_url: str, name: str) -> None:
    engine = write(database_url, [*FUNNEL_LIVES, *sla_lives()])
    _, marketer = create_key(engine, "marketer", "dashboard")
    _, rep = create_key(engine, "rep", "alice's key", rep_id="alice")
    app = FastAPI()
    app.include_router(ReportsApi(engine).router())
    client = TestClient(app)
    url = f"/api/reports/{name}"
    period = {"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"}
    as_marketer = {"Authorization": f"Bearer {marketer}"}

    assert client.get(url, params=period).status_code == 401
    assert client.get(url, params=period, headers={"X-API-Key": rep}).status_code == 403
    assert client.get("/api/reports/no-such", headers=as_marketer).status_code == 404
    backwards = client.get(
        url, params={"since": "2026-04-01", "until": "2026-03-01"}, headers=as_marketer
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"] == (
        "since (2026-04-01 00:00) must be before until (2026-03-01 00:00)"
    )

    got = client.get(url, params=period, headers=as_marketer)
    assert got.status_code == 200
    body = got.json()
    assert body["name"] == name
    expected = {
        "funnel": ("leads_created", 5),
        "sla": ("received", 8),
        "influence": ("influenced_deals", 0),
    }[name]
    assert body["summary"][expected[0]] == expected[1]

    as_csv = client.get(url, params={**period, "format": "csv"}, headers=as_marketer)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0] == ",".join(body["tables"][0]["columns"])
