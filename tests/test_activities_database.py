"""The activities' database writes, on SQLite and on the real PostgreSQL server: a retried
activity never double-counts, round robin never hands two leads the same turn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from temporalio.testing import ActivityEnvironment

from activities import EmailActivities, Mailer, RecordActivities, RoutingActivities
from nurture.access.consent import LinkSigner
from nurture.config.settings import MailerSettings
from nurture.contract.messages import AssignRequest, EmailRequest, TransitionRecord
from nurture.domain.rules import Sender
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import OutboxMessage, RepAssignment, StageTransition, make_engine
from nurture.store.suppression import suppress
from tests.conftest import TEST_SECRET, TEST_TEMPLATES


def test_round_robin_gives_every_turn_once_under_concurrency(database_url: str) -> None:
    routing = RoutingActivities(make_engine(database_url))
    env = ActivityEnvironment()

    def assign(n: int) -> str | None:
        return env.run(
            routing.assign_rep,
            AssignRequest(
                key=f"assign:lead{n}:h1",
                lead_id=f"lead{n}",
                pool="emea",
                candidates=["alice", "bob", "chen"],
                strategy="round_robin",
            ),
        )

    with ThreadPoolExecutor(8) as pool:
        reps = list(pool.map(assign, range(30)))
    assert sorted(reps.count(r) for r in ("alice", "bob", "chen")) == [10, 10, 10]
    retried = assign(7)  # a retried activity returns the same rep and takes no turn
    assert retried == reps[7]
    with Session(routing.engine) as session:
        assert session.exec(select(func.count()).select_from(RepAssignment)).one() == 30


def test_a_retried_transition_record_is_written_once(database_url: str) -> None:
    records = RecordActivities(make_engine(database_url))
    record = TransitionRecord(
        key="lead-1:t1",
        lead_id="lead-1",
        workflow_id="lead-lead-1",
        at=datetime(2026, 11, 24, 12, tzinfo=UTC),
        from_stage="nurturing",
        to_stage="assigned",
        by="routing",
        reason="handoff",
        score=105,
        owner="alice",
    )
    env = ActivityEnvironment()
    env.run(records.record_transition, record)
    env.run(records.record_transition, record)
    with Session(records.engine) as session:
        rows = session.exec(select(StageTransition)).all()
    assert [(r.lead_id, r.to_stage, r.owner) for r in rows] == [("lead-1", "assigned", "alice")]


def email_activities(engine: Engine, standin: SendGridStandIn) -> EmailActivities:
    return EmailActivities(
        engine,
        Mailer(MailerSettings("SG.k", standin.url)),
        TEST_TEMPLATES,
        LinkSigner(secret=TEST_SECRET),
    )


def touch_request(lead: str, first_name: str, subject: str) -> EmailRequest:
    return EmailRequest(
        key=f"touch:{lead}:general:e1:c1:hello",
        lead_id=lead,
        category="touch",
        to_email=f"{lead}@corp.example",
        sender=Sender(email="m@test.example"),
        template="t/touch.html",
        subject=subject,
        context={
            "lead": {"first_name": first_name, "company": None},
            "step": "hello",
            "cadence": "general",
            "cycle": 1,
        },
    )


def test_a_retried_send_does_not_email_twice(database_url: str) -> None:
    with SendGridStandIn() as standin:
        engine = make_engine(database_url)
        emails = email_activities(engine, standin)
        request = touch_request("lead-2", "Bo", "Hello {{ lead.first_name }}")
        env = ActivityEnvironment()
        first = env.run(emails.send_email, request)
        second = env.run(emails.send_email, request)
        assert (first.status, second.status) == ("sent", "already_sent")
        assert first.message_id == second.message_id
        assert len(standin.messages_with(nurture_key=request.key)) == 1
        assert standin.messages[0].subject == "Hello Bo"
        with Session(engine) as session:
            row = session.get(OutboxMessage, request.key)
        assert row is not None and row.status == "sent" and row.attempts == 1


def test_a_send_accepted_before_a_crash_counts_as_sent_even_if_the_lead_unsubscribed_since(
    database_url: str,
) -> None:
    """The worker died after SendGrid accepted the touch; the lead then unsubscribed from that
    very email. The retry must report the touch as sent (it was), not as suppressed."""
    with SendGridStandIn() as standin:
        engine = make_engine(database_url)
        emails = email_activities(engine, standin)
        request = touch_request("lead-3", "Di", "Hello")
        env = ActivityEnvironment()
        env.run(emails.send_email, request)
        with Session(engine) as session:  # as if the worker died before recording it
            row = session.get(OutboxMessage, request.key)
            assert row is not None
            row.status = "pending"
            session.add(row)
            session.commit()
        suppress(engine, request.to_email, "unsubscribe", "link")
        retried = env.run(emails.send_email, request)
        other = env.run(emails.send_email, request.model_copy(update={"key": "touch:lead-3:x"}))

    assert retried.status == "already_sent" and len(standin.messages) == 1
    assert other.status == "suppressed" and other.detail == "unsubscribe (link)"
