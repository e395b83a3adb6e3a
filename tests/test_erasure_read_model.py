"""Erasure in the database, on SQLite and PostgreSQL: after a lead's rows are pseudonymised no
row names the person (every personal column, and every text column, scanned for the address,
the name, the company and the lead id) and no row is found by the lead id, while every report's
figures are what they were. A synthetic population of real lead cores fills the read model
(``bench/population.py``); the lead's outbox, task and provider events are added beside."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from activities.records import write_batches
from bench.population import NOW, Population
from nurture.contract.ledger import FactBatch
from nurture.privacy.pseudonymise import forget_addresses, lead_tables, pseudonymise
from nurture.store.db import OutboxMessage, SalesTask, WebhookEvent, make_engine
from nurture.store.personal import is_text, personal_columns
from nurture.store.suppression import suppress, why_suppressed
from tests.erasure_checks import report_figures, text_cells

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _populate(engine: Engine) -> list[FactBatch]:
    batches = list(Population(40, 400).batches())
    write_batches(engine, batches)
    return batches


def _richest(batches: list[FactBatch]) -> FactBatch:
    """The lead with the most kinds of rows (events, touches, a handoff, an outcome...)."""
    return max(batches, key=lambda b: (len({f.kind for f in b.facts}), len(b.facts)))


def _add_beside(engine: Engine, lead: str, email: str, name: str) -> None:
    """What the lead's life writes besides the read model: an email sent, a call task, the
    provider's events (one matched to the lead, one for its address only)."""
    with Session(engine) as session:
        session.add(
            OutboxMessage(
                key=f"touch:{lead}:smb:e1:c1:welcome",
                lead_id=lead,
                category="touch",
                to_email=email,
                subject=f"Welcome, {name}",
                status="sent",
            )
        )
        session.add(
            SalesTask(
                key=f"touch:{lead}:smb:e1:c1:call",
                lead_id=lead,
                channel="call",
                cadence="smb",
                step="call",
                title=f"Call {name}",
                instructions=f"Ask {name} about the trial",
                phone="+49 30 1234567",
                address="Hauptstr. 1, Berlin",
                due_at=AT,
                note=f"{name} asked for Tuesday",
            )
        )
        for number, who in enumerate((lead, None)):
            session.add(
                WebhookEvent(
                    sg_event_id=f"ev-{number}",
                    event="open",
                    email=email,
                    lead_id=who,
                    payload=f'{{"email": "{email}", "lead_id": "{who}"}}',
                )
            )
        session.commit()
    suppress(engine, email, "unsubscribe", "link", lead)


def test_a_pseudonymised_lead_leaves_no_personal_data_and_the_reports_unchanged(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    batches = _populate(engine)
    target = _richest(batches)
    lead, profile = target.lead_id, target.lead
    email, name, company = profile.email, profile.name, profile.company
    assert email and name and company
    _add_beside(engine, lead, email, name)
    before = report_figures(engine, NOW)
    others = {b.lead_id for b in batches} - {lead}

    counts = pseudonymise(engine, lead, "erased-0123456789abcdef")
    forgot = forget_addresses(engine, [email.upper()])

    assert counts["lead"] == 1 and counts["leadevent"] >= 1 and counts["outboxmessage"] == 1
    assert forgot == 1  # the provider's event for the address alone (the other went with the lead)
    assert report_figures(engine, NOW) == before
    token = re.compile(rf"(?<![\w-]){re.escape(lead)}(?![\w-])")
    everywhere = text_cells(engine, set())
    assert [c for c in everywhere if token.search(c[2]) or email in c[2] or company in c[2]] == []
    besides_others = text_cells(engine, others)
    assert [c for c in besides_others if name.lower() in c[2].lower()] == []
    with engine.connect() as conn:
        for table in lead_tables():  # an export by lead id finds nothing
            found = conn.execute(
                select(func.count()).select_from(table).where(table.c.lead_id == lead)
            ).scalar_one()
            assert found == 0, table.name
            for column in personal_columns(table):
                kept = conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.lead_id == "erased-0123456789abcdef")
                    .where(column.is_not(None), column != "")
                ).scalar_one()
                assert kept == 0, f"{table.name}.{column.name}"
        leads_left = set(conn.execute(select(SQLModel.metadata.tables["lead"].c.lead_id)).scalars())
    assert leads_left == others | {"erased-0123456789abcdef"}  # other leads untouched
    assert why_suppressed(engine, email) == "unsubscribe (link)"  # the list keeps the digest
    # Again: nothing more to do, the same counts.
    assert pseudonymise(engine, lead, "erased-0123456789abcdef") == counts
    engine.dispose()


def test_every_text_column_of_a_table_keyed_by_lead_is_marked_personal_or_known_safe() -> None:
    """A column added to a lead's table must be declared personal or named here as holding
    no personal data: erasure clears only what is declared."""
    safe = {
        "lead_id", "workflow_id", "key", "segment", "campaign", "stage", "grade", "owner",
        "outcome", "industry", "country", "type", "cause", "from_stage", "to_stage", "by",
        "qualified_by", "rep", "status", "rejected_by", "response", "reassigned_to",
        "escalated_to", "cadence", "step", "channel", "result", "category", "pool", "rep_id",
        "provider_message_id", "closed_by", "sg_event_id", "event", "message_id", "email_hash",
        "source", "reason", "version", "topic",
        # A SendGrid event: the touch it is about (a key, rewritten with the lead id) and
        # what it counts as (delivered, open…).
        "touch_key", "engagement",
        # The A/B variant a touch sent (a name from the cadence rules).
        "variant",
        # A website visitor: its site's public key; the network's owner (a company or an ISP,
        # not a person); and a digest of the browser's id, kept so that an erased person's
        # browser stays forgotten (its later visits are dropped, never stored).
        "site_key", "organisation", "visitor_key",
    }  # fmt: skip
    unmarked = [
        f"{table.name}.{column.name}"
        for table in lead_tables()
        for column in table.columns
        if is_text(column) and column not in personal_columns(table) and column.name not in safe
    ]
    assert unmarked == []
