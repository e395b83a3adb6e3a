"""Schema migrations on SQLite and PostgreSQL: from empty, from the release before migrations
(rows kept), down and up again, and two processes migrating one empty database at once."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, SQLModel, select

from nurture.store import (  # noqa: F401  (every table in SQLModel.metadata)
    data_keys,
    read_model,
    rules_content,
    rules_history,
    rules_status,
    variant_winners,
)
from nurture.store.db import ApiKey, OutboxMessage, StageTransition, make_engine
from nurture.store.migrations import (
    BASELINE,
    HEAD,
    SCRIPT_LOCATION,
    alembic_config,
    current_revision,
    migrate,
)
from nurture.store.read_model import CampaignCost, LeadRecord
from nurture.store.suppression import why_suppressed

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
DAY = date(2026, 11, 1)

PREVIOUS_RELEASE_TABLES = (
    "outboxmessage",
    "stagetransition",
    "roundrobinturn",
    "repassignment",
    "suppression",
    "webhookevent",
    "webhookpost",
    "salestask",
    "apikey",
)
ADDED_SINCE = {
    "stagetransition": {"seconds_in_from_stage", "handoff"},
    "outboxmessage": {"text_body", "html_body"},
    "webhookevent": {"touch_key", "engagement"},
}
"""Columns of those tables that the release before migrations did not have (revisions 0002,
0006 and 0009)."""
REPLACED_SINCE = {"suppression": {"email_hash": ("email", 320)}}
"""Columns that took another's place since: the list's addresses became digests (0005)."""


def previous_release_metadata() -> sa.MetaData:
    """The tables as the release before migrations made them with ``create_all`` (git 6411d68):
    today's models of those tables less what was added since. A later change to one of them
    (a new index, say) needs its own revision, and belongs in ``ADDED_SINCE`` here."""
    old = sa.MetaData()
    for name in PREVIOUS_RELEASE_TABLES:
        table = SQLModel.metadata.tables[name]
        added = ADDED_SINCE.get(name, set())
        replaced = REPLACED_SINCE.get(name, {})
        columns = [
            sa.Column(replaced[c.name][0], sa.String(replaced[c.name][1]), primary_key=True)
            if c.name in replaced
            else c._copy()
            for c in table.columns
            if c.name not in added
        ]
        sa.Table(name, old, *columns)
    return old


def differences(engine: sa.Engine, metadata: sa.MetaData) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match ``metadata``.
    Nothing on either dialect, types included: the revisions create VARCHAR(n) and DATETIME or
    TIMESTAMPTZ exactly as SQLModel's AutoString and UTCDateTime do, and Alembic compares
    through the type decorators, so no difference needs ignoring."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def version_rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def alembic(engine: sa.Engine, action: str, revision: str) -> None:
    with engine.begin() as conn:
        getattr(command, action)(alembic_config(conn), revision)


def test_head_is_alembics_head_and_the_history_is_one_line() -> None:
    script = ScriptDirectory(str(SCRIPT_LOCATION))
    assert script.get_heads() == [HEAD]
    assert script.get_bases() == [BASELINE]
    chain = [s.revision for s in script.walk_revisions()]
    assert chain[0] == HEAD and chain[-1] == BASELINE


def test_from_empty_the_schema_is_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) == HEAD
    assert version_rows(engine) == [HEAD]
    assert differences(engine, SQLModel.metadata) == []
    engine.dispose()


def test_at_head_migrate_is_one_look_at_the_version(database_url: str) -> None:
    engine = make_engine(database_url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    migrate(engine)  # what every later make_engine on this database does
    assert len(statements) <= 2, statements  # is there a version table, and its row: no more
    assert not any(s.lstrip().upper().startswith(("CREATE", "ALTER", "INSERT")) for s in statements)
    engine.dispose()


def test_the_baseline_is_what_the_previous_release_created(database_url: str) -> None:
    engine = make_engine(database_url, migrate=False)
    alembic(engine, "upgrade", BASELINE)
    assert current_revision(engine) == BASELINE
    assert differences(engine, previous_release_metadata()) == []
    engine.dispose()


def test_a_previous_release_database_is_upgraded_and_keeps_its_rows(database_url: str) -> None:
    old = previous_release_metadata()
    raw = sa.create_engine(database_url)
    old.create_all(raw)  # what the previous release did: no alembic_version
    with raw.begin() as conn:
        conn.execute(
            old.tables["stagetransition"].insert(),
            {
                "key": "t1",
                "lead_id": "ada",
                "workflow_id": "lead-ada",
                "at": AT,
                "from_stage": "nurturing",
                "to_stage": "assigned",
                "by": "system",
                "reason": "score 85 >= 80",
                "score": 85,
                "owner": "alice",
            },
        )
        conn.execute(
            old.tables["outboxmessage"].insert(),
            {
                "key": "m1",
                "lead_id": "ada",
                "category": "nurture",
                "to_email": "ada@example.com",
                "subject": "Hello",
                "status": "sent",
                "attempts": 1,
                "created_at": AT,
                "sent_at": AT,
            },
        )
        conn.execute(
            old.tables["suppression"].insert(),
            [
                {"email": "ada@example.com", "reason": "unsubscribe", "source": "link", "at": AT},
                {"email": "bo@example.com", "reason": "bounce", "source": "sendgrid", "at": AT},
            ],
        )
        conn.execute(
            old.tables["apikey"].insert(),
            {
                "id": "k1",
                "name": "tracker",
                "role": "ingest",
                "secret_hash": "0" * 64,
                "created_at": AT,
            },
        )
    raw.dispose()

    engine = make_engine(database_url)
    assert current_revision(engine) == HEAD
    assert differences(engine, SQLModel.metadata) == []
    with Session(engine) as session:
        moved = session.get(StageTransition, "t1")
        assert moved is not None
        assert (moved.to_stage, moved.owner, moved.at) == ("assigned", "alice", AT)
        assert moved.seconds_in_from_stage is None and moved.handoff is None
        message = session.get(OutboxMessage, "m1")
        assert message is not None and message.status == "sent"
        # The suppression list keeps its entries, by digest only: no address is left in it.
        assert why_suppressed(engine, "Ada@Example.com ") == "unsubscribe (link)"
        assert why_suppressed(engine, "bo@example.com") == "bounce (sendgrid)"
        assert why_suppressed(engine, "cy@example.com") is None
        with engine.connect() as conn:
            listed = conn.execute(sa.text("SELECT * FROM suppression")).all()
        assert len(listed) == 2 and "example.com" not in repr(listed)
        key = session.get(ApiKey, "k1")
        assert key is not None and key.role == "ingest"
        session.add(
            StageTransition(
                key="t2",
                lead_id="ada",
                workflow_id="lead-ada",
                at=AT,
                from_stage="assigned",
                to_stage="working",
                by="alice",
                reason="accepted",
                score=85,
                seconds_in_from_stage=600.0,
                handoff=1,
            )
        )
        session.add(LeadRecord(lead_id="ada", workflow_id="lead-ada", stage="working"))
        session.commit()
        assert session.get(StageTransition, "t2").seconds_in_from_stage == 600.0
        assert session.exec(select(LeadRecord.stage)).all() == ["working"]
    engine.dispose()


TABLES_SINCE_0003 = frozenset(
    {
        "datakey",
        "installsalt",
        "erasurereceipt",
        "consent",
        "topicchoice",
        "site",
        "visitor",
        "visitorevent",
        "rulesversion",
        "variantwinner",
        "rulescontent",
    }
)
"""Tables that revisions after 0003 add."""
CHANGED_SINCE_0003 = frozenset({"suppression"})
"""Tables that revisions after 0003 change: made as the previous release made them."""
COLUMNS_SINCE_0003 = {
    "outboxmessage": ("text_body", "html_body"),
    "webhookevent": ("touch_key", "engagement"),
    "touch": ("variant",),
}
"""Columns that revisions after 0003 add to tables of 0003."""
INDEXES_SINCE_0003 = ("ix_webhookevent_touch_key", "ix_touch_cadence_step")
"""Indexes on those columns (dropped before them)."""


def test_a_database_of_the_create_all_builds_with_the_read_model_is_taken_as_head(
    database_url: str,
) -> None:
    """Development builds between the release and migrations created every table of their
    time (those of revision 0003); later revisions' tables are made by migrating."""
    raw = sa.create_engine(database_url)
    later = TABLES_SINCE_0003 | CHANGED_SINCE_0003
    SQLModel.metadata.create_all(
        raw, tables=[t for t in SQLModel.metadata.sorted_tables if t.name not in later]
    )
    old = previous_release_metadata()
    old.create_all(raw, tables=[old.tables[name] for name in CHANGED_SINCE_0003])
    with raw.begin() as conn:
        for index in INDEXES_SINCE_0003:
            conn.execute(sa.text(f"DROP INDEX {index}"))
        for table, columns in COLUMNS_SINCE_0003.items():
            for column in columns:
                conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    raw.dispose()
    engine = make_engine(database_url)
    assert version_rows(engine) == [HEAD]
    assert differences(engine, SQLModel.metadata) == []
    engine.dispose()


def test_down_to_the_baseline_and_up_again(database_url: str) -> None:
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(
            StageTransition(
                key="t1",
                lead_id="ada",
                workflow_id="lead-ada",
                at=AT,
                to_stage="nurturing",
                by="system",
                reason="created",
                score=0,
                seconds_in_from_stage=1.5,
            )
        )
        session.commit()

    alembic(engine, "downgrade", BASELINE)
    assert current_revision(engine) == BASELINE
    assert differences(engine, previous_release_metadata()) == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT key, reason FROM stagetransition")).all() == [
            ("t1", "created")
        ]

    migrate(engine)
    assert current_revision(engine) == HEAD
    assert differences(engine, SQLModel.metadata) == []
    with Session(engine) as session:
        back = session.get(StageTransition, "t1")
        assert back is not None and back.seconds_in_from_stage is None  # dropped on the way down
        session.add(CampaignCost(campaign="q4", period_start=DAY, period_end=DAY, amount=10.0))
        session.commit()

    alembic(engine, "downgrade", "base")
    assert current_revision(engine) is None
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()


def _start_engine(database_url: str, barrier: Any) -> None:
    barrier.wait(timeout=60)  # every process imported and ready: make_engine at the same moment
    make_engine(database_url).dispose()


def test_processes_migrating_one_empty_database_at_once_all_succeed(database_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    processes = [
        spawn.Process(target=_start_engine, args=(database_url, barrier)) for _ in range(2)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [p.exitcode for p in processes] == [0, 0]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    engine = make_engine(database_url, migrate=False)
    assert version_rows(engine) == [HEAD]
    assert differences(engine, SQLModel.metadata) == []
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_db_commands(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from nurture.cli.app import app

    monkeypatch.setenv("NURTURE_DATABASE_URL", database_url)
    runner = CliRunner()
    behind = runner.invoke(app, ["db", "current"])
    assert (
        behind.exit_code == 1 and "none" in behind.output and "nurture db upgrade" in behind.output
    )
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and f"none → {HEAD}" in upgraded.output
    again = runner.invoke(app, ["db", "upgrade", "--json"])
    assert again.exit_code == 0 and '"from": "' + HEAD in again.output
    now = runner.invoke(app, ["db", "current", "--json"])
    assert now.exit_code == 0 and '"up_to_date": true' in now.output


def test_a_database_from_a_newer_release_is_refused_clearly(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer release migrated it: nothing starts, and every entry point says why."""
    from typer.testing import CliRunner

    from nurture.cli.app import app
    from nurture.store.migrations import SchemaTooNewError

    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaTooNewError, match="revision 0099, newer than this release"):
        make_engine(database_url)
    monkeypatch.setenv("NURTURE_DATABASE_URL", database_url)
    runner = CliRunner()
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 3 and "newer than this release" in current.output
    upgrade = runner.invoke(app, ["db", "upgrade"])
    # The message wraps at the terminal's width, wherever the revision names put its words.
    assert upgrade.exit_code == 3 and "Upgrade this installation" in " ".join(
        upgrade.output.split()
    )
    engine.dispose()


def test_sendgrid_events_received_before_0009_are_tied_to_their_touch_and_classified(
    database_url: str,
) -> None:
    engine = make_engine(database_url, migrate=False)
    alembic(engine, "upgrade", "0008")
    touch = "touch:ada:welcome:e1:c1:intro"
    proxy: dict[str, Any] = {"event": "open", "touch_id": touch, "sg_machine_open": True}
    unsubscribe_link = "click on the unsubscribe link is not interest"
    received: list[tuple[str, dict[str, Any], str | None, str | None]] = [
        ("e-open", {"event": "open", "touch_id": touch}, None, "open"),
        ("e-proxy", proxy, None, "machine_open"),
        ("e-unsub-click", {"event": "click", "touch_id": touch}, unsubscribe_link, None),
        ("e-click", {"event": "click", "touch_id": touch}, None, "click"),
        ("e-blocked", {"event": "bounce", "type": "blocked", "touch_id": touch}, None, None),
        ("e-dropped", {"event": "dropped", "touch_id": touch}, None, "bounced"),
        ("e-alert", {"event": "delivered"}, None, "delivered"),
    ]  # fmt: skip
    events = sa.table(
        "webhookevent",
        *(sa.column(c) for c in ("sg_event_id", "event", "payload", "detail", "status")),
        sa.column("received_at"),
    )
    with engine.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "sg_event_id": i,
                    "event": p["event"],
                    "payload": json.dumps(p),
                    "detail": d,
                    "status": "recorded",
                    "received_at": datetime.now(UTC),
                }
                for i, p, d, _ in received
            ],
        )
    alembic(engine, "upgrade", HEAD)
    with engine.connect() as conn:
        got = dict(
            (row[0], (row[1], row[2]))
            for row in conn.execute(
                sa.text("SELECT sg_event_id, touch_key, engagement FROM webhookevent")
            )
        )
    assert got == {i: (p.get("touch_id"), kind) for i, p, _, kind in received}
    engine.dispose()
