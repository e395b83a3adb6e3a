"""The read model's writer, on SQLite and on PostgreSQL: a retried batch never double-counts, a
late, older write never rolls a row back, and leads written together in one transaction each
land once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, func, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.records import RecordActivities, write_batch
from nurture.contract.ledger import (
    AssignmentFact,
    EventFact,
    FactBatch,
    HandoffFact,
    LeadSnapshot,
    ScoreChangeFact,
    TransitionFact,
)
from nurture.store.db import StageTransition, make_engine
from nurture.store.read_model import HandoffRecord, LeadEventRecord, LeadRecord, SalesAssignment

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _lead(version: int, stage: str, score: int) -> LeadSnapshot:
    return LeadSnapshot(
        lead_id="ada",
        workflow_id="lead-ada",
        version=version,
        stage=stage,
        score=score,
        grade="B",
        created_at=T0,
        updated_at=T0 + timedelta(minutes=version),
    )


def _handoff(version: int, status: str) -> HandoffFact:
    return HandoffFact(
        key="ada:h1",
        version=version,
        number=1,
        at=T0 + timedelta(hours=1),
        score=104,
        grade="B",
        threshold=100,
        instant=False,
        qualified_by="score 104 reached threshold 100 on page_view",
        status=status,  # type: ignore[arg-type]
        status_at=None if status == "open" else T0 + timedelta(hours=2),
    )


def _first_batch() -> FactBatch:
    return FactBatch(
        lead_id="ada",
        lead=_lead(1, "assigned", 104),
        facts=[
            EventFact(
                key="ada:e1", at=T0, received_at=T0, type="page_view", points=10, score_after=104
            ),
            ScoreChangeFact(
                key="ada:e1:score",
                at=T0,
                delta=10,
                score_after=104,
                cause="event",
                detail="page_view +10",
            ),
            TransitionFact(
                key="ada:t1",
                at=T0 + timedelta(hours=1),
                from_stage="nurturing",
                to_stage="assigned",
                by="routing",
                reason="handoff",
                score=104,
                owner="alice",
                seconds_in_from_stage=3600,
                handoff=1,
            ),
            _handoff(1, "open"),
            AssignmentFact(
                key="ada:a1",
                version=2,
                handoff=1,
                rep="alice",
                at=T0 + timedelta(hours=1),
                due_at=T0 + timedelta(hours=5),
                reason="handoff",
            ),
        ],
    )


def _counts(engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return (
            session.exec(select(func.count()).select_from(LeadEventRecord)).one(),
            session.exec(select(func.count()).select_from(StageTransition)).one(),
            session.exec(select(func.count()).select_from(HandoffRecord)).one(),
        )


def test_a_retried_batch_is_written_once(database_url: str) -> None:
    engine = make_engine(database_url)
    write_batch(engine, _first_batch())
    write_batch(engine, _first_batch())  # the local activity retried after a lost reply
    with ThreadPoolExecutor(4) as pool:  # and racing copies (a run and its continuation)
        list(pool.map(lambda _: write_batch(engine, _first_batch()), range(4)))
    assert _counts(engine) == (1, 1, 1)
    with Session(engine) as session:
        lead = session.get(LeadRecord, "ada")
        assert lead is not None and (lead.stage, lead.score, lead.version) == ("assigned", 104, 1)
        turn = session.get(SalesAssignment, "ada:a1")
        assert turn is not None and turn.due_at == T0 + timedelta(hours=5)


def test_a_late_older_write_never_rolls_a_row_back(database_url: str) -> None:
    engine = make_engine(database_url)
    write_batch(engine, _first_batch())
    accepted = FactBatch(
        lead_id="ada",
        lead=_lead(2, "working", 104),
        facts=[
            _handoff(3, "accepted"),
            AssignmentFact(
                key="ada:a1",
                version=4,
                handoff=1,
                rep="alice",
                at=T0 + timedelta(hours=1),
                due_at=T0 + timedelta(hours=5),
                reason="handoff",
                responded_at=T0 + timedelta(hours=2),
                response="accepted",
                seconds_to_response=3600,
            ),
        ],
    )
    write_batch(engine, accepted)
    write_batch(engine, _first_batch())  # an earlier batch arriving late: rows stay newer
    with Session(engine) as session:
        lead = session.get(LeadRecord, "ada")
        handoff = session.get(HandoffRecord, "ada:h1")
        turn = session.get(SalesAssignment, "ada:a1")
        assert lead is not None and (lead.stage, lead.version) == ("working", 2)
        assert handoff is not None and (handoff.status, handoff.version) == ("accepted", 3)
        assert turn is not None and turn.response == "accepted"
        assert turn.seconds_to_response == 3600
        # Within one batch the newest version of a row wins, whatever its position.
        write_batch(
            engine,
            FactBatch(
                lead_id="ada",
                lead=_lead(3, "won", 104),
                facts=[_handoff(6, "won"), _handoff(5, "rejected")],
            ),
        )
        session.expire_all()
        handoff = session.get(HandoffRecord, "ada:h1")
        assert handoff is not None and handoff.status == "won"
        rows = session.exec(select(col(LeadRecord.stage))).all()
        assert rows == ["won"]


def test_odd_values_never_block_a_leads_facts(database_url: str) -> None:
    """PostgreSQL refuses NUL characters and over-long values: the writer cleans them, and a
    key cut to fit stays unique."""
    engine = make_engine(database_url)
    long_id = "x" * 200
    batch = FactBatch(
        lead_id="ada",
        lead=_lead(1, "nurturing", 5).model_copy(update={"campaign": "c" * 250}),
        facts=[
            EventFact(
                key=f"ada:ev:{long_id}{n}",
                at=T0,
                received_at=T0,
                type="page_view",
                url="https://x.example/\x00pricing",
                campaign="c" * 250,
                points=1,
                score_after=5,
            )
            for n in range(2)
        ],
    )
    write_batch(engine, batch)
    write_batch(engine, batch)
    with Session(engine) as session:
        events = session.exec(select(LeadEventRecord)).all()
        lead = session.get(LeadRecord, "ada")
    assert len(events) == 2 and len({e.key for e in events}) == 2
    assert {e.url for e in events} == {"https://x.example/pricing"}
    assert lead is not None and lead.campaign == "c" * 200


def test_a_stage_move_or_rep_turn_longer_than_its_columns_is_built_and_cut_to_fit(
    database_url: str,
) -> None:
    """The shapes a fact shares with its table (``StageMove``, ``RepTurn``) bound no length: the
    workflow builds them from whatever it holds. Only the table's columns are bounded, and the
    writer cuts a value to its column."""
    engine = make_engine(database_url)
    long = "r" * 500
    move = TransitionFact(
        key="ada:t9",
        at=T0,
        from_stage=long,
        to_stage=long,
        by=long,
        reason=long,
        score=5,
        owner=long,
    )
    turn = AssignmentFact(
        key="ada:a9",
        version=1,
        handoff=1,
        rep=long,
        at=T0,
        reason=long,
        response=long,
        escalated_to=long,
        reassigned_to=long,
    )
    write_batch(engine, FactBatch(lead_id="ada", lead=_lead(1, "assigned", 5), facts=[move, turn]))
    with Session(engine) as session:
        moved = session.get(StageTransition, "ada:t9")
        turned = session.get(SalesAssignment, "ada:a9")
    assert moved is not None and turned is not None
    assert (moved.from_stage, moved.to_stage, moved.by, moved.owner, moved.reason) == (
        long[:20],
        long[:20],
        long[:100],
        long[:100],
        long,
    )
    assert (turned.rep, turned.response, turned.reassigned_to, turned.reason) == (
        long[:100],
        long[:20],
        long[:100],
        long,
    )
    assert turned.escalated_to == long


def _lead_batch(lead_id: str, score: int) -> FactBatch:
    lead = _lead(1, "nurturing", score)
    return FactBatch(
        lead_id=lead_id,
        lead=lead.model_copy(update={"lead_id": lead_id, "workflow_id": f"lead-{lead_id}"}),
        facts=[
            EventFact(
                key=f"{lead_id}:e1",
                at=T0,
                received_at=T0,
                type="form_fill",
                points=5,
                score_after=5,
            )
        ],
    )


def test_leads_written_together_land_once_each_and_a_refused_batch_fails_alone(
    database_url: str,
) -> None:
    """Local activities of many leads at once share transactions (group commit): every lead's
    facts land once, even when its activity runs again, and a batch the database refuses (a
    score past PostgreSQL's INTEGER; SQLite takes it) fails its own lead's activity only."""
    engine = make_engine(database_url)
    records = RecordActivities(engine)
    batches = [_lead_batch(f"lead{n}", 5) for n in range(24)]
    batches[7] = _lead_batch("lead7", 2**40)

    def record(batch: FactBatch) -> str:
        try:
            ActivityEnvironment().run(records.record_facts, batch)  # as the worker runs it
        except ApplicationError as exc:
            return exc.type or "ApplicationError"
        return "written"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(record, batches + batches[:5]))  # five retried
    refused = {i for i, outcome in enumerate(outcomes) if outcome != "written"}
    postgres = database_url.startswith("postgresql")
    assert refused == ({7} if postgres else set())
    assert outcomes[7] == ("ReadModelRejected" if postgres else "written")
    with Session(engine) as session:
        events = session.exec(select(col(LeadEventRecord.lead_id))).all()
        leads = session.exec(select(col(LeadRecord.lead_id))).all()
    expected = sorted(b.lead_id for b in batches if not (postgres and b.lead_id == "lead7"))
    assert sorted(events) == sorted(leads) == expected
