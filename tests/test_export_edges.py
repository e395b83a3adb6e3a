"""The export's edges: operators only, an unknown or hostile lead id refused (never a 500, never
rendered), a lead whose workflow is missing or closed still exported with what is missing said,
a table added later exported without a change, and thousands of rows read in one query per
table."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from nurture.privacy.export import (
    TemporalHoldings,
    address_tables,
    build_document,
    lead_tables,
    stored_records,
)
from nurture.store.db import WebhookEvent, make_engine
from nurture.store.read_model import LeadEventRecord, LeadRecord, ScoreChange, table_of
from nurture.store.suppression import suppress
from tests.conftest import lead_id, wait_for_state
from tests.test_export_life import export_by_cli

if TYPE_CHECKING:
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]  # the `api` fixture: the service with a worker

ROOT = Path(__file__).parent.parent
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOTHING_IN_TEMPORAL = TemporalHoldings(workflow=None, state=None)
HOSTILE_IDS = [
    "{{7*7}}",
    "{%25 raw %25}x",
    "<script>alert(1)</script>",
    "x" * 10_000,
    "..%2F..%2Fapi%2Fkeys",
    "%2e%2e",
    "a%00b",
    "ada%0A",
    "a b",
]


async def test_only_operators_export_and_unknown_or_hostile_ids_are_refused(api: Api) -> None:
    lead = lead_id("edge")
    handle = await api.engine.profile(lead_id=lead, email=f"{lead}@mail.example", first_name="Eve")
    await wait_for_state(handle, lambda s: s.profile.first_name == "Eve")
    path = f"/api/leads/{lead}/export"

    assert (await api.http.get(path)).status_code == 401
    for role in ("ingest", "marketer", "alice"):
        refused = await api.http.get(path, headers=api.auth(role))
        assert refused.status_code == 403, (role, refused.text)
        assert "operator" in refused.json()["detail"]
    mine = await api.http.get(path, headers=api.auth("operator"))
    assert mine.status_code == 200 and mine.json()["profile"]["email"] == f"{lead}@mail.example"

    unknown = await api.http.get("/api/leads/nobody-0/export", headers=api.auth("operator"))
    assert unknown.status_code == 404 and "no lead 'nobody-0'" in unknown.json()["detail"]
    for hostile in HOSTILE_IDS:
        answer = await api.http.get(f"/api/leads/{hostile}/export", headers=api.auth("operator"))
        assert answer.status_code in (404, 422), (hostile[:40], answer.status_code, answer.text)
        assert "detail" in answer.json() and "49" not in answer.text

    missing, traversal, template = await asyncio.gather(
        *(
            export_by_cli(api.engine, ROOT, lead)
            for lead in ("nobody-0", "../../etc/passwd", "{{7*7}}")
        )
    )
    assert missing.returncode == 1 and "no lead 'nobody-0'" in missing.stderr
    for refused_id in (traversal, template):
        assert refused_id.returncode == 1 and "no lead has this id" in refused_id.stderr
        assert "49" not in refused_id.stderr + refused_id.stdout
    assert not list(ROOT.glob("lead-*-export.json"))  # nothing written for a refused id

    # A closed workflow is still exported: its status says so.
    await handle.terminate(reason="test")
    closed = (await api.http.get(path, headers=api.auth("operator"))).json()
    assert closed["workflow"]["status"] == "terminated"
    assert closed["state"] is not None or any(m.startswith("state:") for m in closed["missing"])

    # A lead the database remembers but Temporal does not (its workflow past retention).
    ghost = lead_id("ghost")
    with Session(make_engine(api.engine.database_url)) as session:
        session.add(lead_row(ghost, "ghost@mail.example"))
        session.add(event_row(ghost, 0))
        session.commit()
    remembered = await api.http.get(f"/api/leads/{ghost}/export", headers=api.auth("operator"))
    assert remembered.status_code == 200, remembered.text
    document = remembered.json()
    assert document["workflow"] is None and document["state"] is None
    assert document["profile"]["email"] == "ghost@mail.example"
    assert any("no workflow" in m for m in document["missing"])
    assert [row["type"] for row in document["records"]["leadevent"]] == ["page_view"]


def test_a_table_added_later_is_exported_without_touching_the_export(tmp_path: Path) -> None:
    metadata = sa.MetaData()
    consent = sa.Table(
        "consent",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("lead_id", sa.String),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("source", sa.String),
    )
    sa.Table("topic", metadata, sa.Column("lead_id", sa.String, primary_key=True))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'later.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            consent.insert(),
            [
                {"lead_id": "ann", "at": AT + timedelta(days=1), "source": "form"},
                {"lead_id": "bob", "at": AT, "source": "import"},
                {"lead_id": "ann", "at": AT, "source": "double opt-in"},
            ],
        )
        found = stored_records(conn, "ann", metadata=metadata)
    assert found == {
        "consent": [
            {
                "id": 3,
                "lead_id": "ann",
                "at": "2026-11-02T09:00:00+00:00",
                "source": "double opt-in",
            },
            {"id": 1, "lead_id": "ann", "at": "2026-11-03T09:00:00+00:00", "source": "form"},
        ],
        "topic": [],
    }


def test_thousands_of_events_take_one_query_per_table_and_another_lead_leaks_nothing(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    many, other = "many-1", "other-1"
    with engine.begin() as conn:
        conn.execute(
            table_of(LeadEventRecord).insert(),
            [event_row(many, n).model_dump() for n in range(5000)]
            + [event_row(other, n).model_dump() for n in range(50)],
        )
        conn.execute(
            table_of(ScoreChange).insert(),
            [
                ScoreChange(
                    key=f"{many}:s{n}", lead_id=many, at=AT, delta=1, score_after=n, cause="event"
                ).model_dump()
                for n in range(5000)
            ],
        )
    suppress(engine, "many@mail.example", "bounce", "sendgrid")  # by digest, no lead
    with Session(engine) as session:
        session.add(lead_row(many, "Many@Mail.example"))
        session.add(lead_row(other, "other@mail.example"))
        # Keyed by the address, not the lead: a bounce and its event that matched no lead.
        session.add(
            WebhookEvent(sg_event_id="e1", event="bounce", email="MANY@mail.example", payload="{}")
        )
        session.add(
            WebhookEvent(sg_event_id="e2", event="open", email="other@mail.example", payload="{}")
        )
        session.commit()

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    started = time.perf_counter()
    document = build_document(engine, many, NOTHING_IN_TEMPORAL)
    elapsed = time.perf_counter() - started
    sa.event.remove(engine, "before_cursor_execute", count)

    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # One per table, and one for the suppression list's digests of the lead's addresses.
    assert len(selects) == len(lead_tables()) + len(address_tables()) + 1
    print(f"export of 10,000 rows: {elapsed:.2f} s")  # the figure docs/operations.md quotes
    records = document["records"]
    assert len(records["leadevent"]) == 5000 and len(records["scorechange"]) == 5000
    assert {row["lead_id"] for row in records["leadevent"]} == {many}
    assert [row["reason"] for row in records["suppression"]] == ["bounce"]
    assert [row["sg_event_id"] for row in records["webhookevent"]] == ["e1"]
    assert other not in str(document) and "other@mail.example" not in str(document)


def lead_row(lead: str, email: str) -> LeadRecord:
    return LeadRecord(
        lead_id=lead, workflow_id=f"lead-{lead}", email=email, stage="nurturing", created_at=AT
    )


def event_row(lead: str, n: int) -> LeadEventRecord:
    return LeadEventRecord(
        key=f"{lead}:e{n}",
        lead_id=lead,
        type="page_view",
        at=AT + timedelta(seconds=n),
        received_at=AT,
        url="https://x.example/p",
        points=1,
        score_after=n,
    )
