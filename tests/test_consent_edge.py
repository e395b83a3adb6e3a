"""Consent records at the edge (issue 15, item 6): a consent sent with a profile over HTTP,
from `nurture lead add` or in a CSV's consent.* columns is refused with a 4xx naming the field
when the lead cannot keep it (dates at the bounds, sizes, an address that is not one, a form
without its IP), and otherwise reaches the lead as a record, verbatim: template syntax and
HTML in the text are kept as text, never rendered. HTTP tests run against a real dev server
with a worker; the consent row lands in the read model, its personal columns marked."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlmodel import Session, select

from nurture.cli.ingest import parse_line
from nurture.client.csv_import import rows_as_json
from nurture.domain.leads import CONSENT_TEXT_MAX, LeadEvent, LeadProfile
from nurture.domain.leads import workflow_id_for as wf
from nurture.store.db import make_engine
from nurture.store.read_model import ConsentRow, table_of
from tests.conftest import lead_id, wait_for_state

if TYPE_CHECKING:
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]  # the `api` fixture: the service with a worker

HOSTILE_TEXT = "{{ 7*7 }} {% raw %}<script>alert(1)</script>{% endraw %} <b>Yes</b>, email me"
FORM = {"source": "form", "text": HOSTILE_TEXT, "ip": "203.0.113.7"}
NEPAL = "2026-11-20T09:00:00+05:45"


def day_ahead(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


REFUSED: list[tuple[dict[str, Any] | str, list[str], str]] = [
    ({**FORM, "text": "x" * (CONSENT_TEXT_MAX + 1)}, ["consent", "text"], "at most 5,000"),
    ({**FORM, "text": "yes\x00"}, ["consent", "text"], "U+0000"),
    ({**FORM, "at": "1999-12-31T23:59:59Z"}, ["consent", "at"], "before 2000-01-01"),
    ({**FORM, "at": day_ahead(25)}, ["consent", "at"], "more than a day in the future"),
    ({**FORM, "at": "2026-11-24T10:00:00+15:00"}, ["consent", "at"], "+15:00 is no time zone's"),
    ({**FORM, "at": "2026-11-24T10:00:00+05:17"}, ["consent", "at"], "+05:17 is no time zone's"),
    ({**FORM, "at": "2026-11-24"}, ["consent", "at"], "not a date and time"),
    ({**FORM, "ip": "999.1.1.1"}, ["consent", "ip"], "not an IP address"),
    ({**FORM, "ip": "<b>{{ip}}</b>"}, ["consent", "ip"], "not an IP address"),
    ({"source": "form", "text": "yes"}, ["consent"], "needs 'ip'"),
    ({"source": "api"}, ["consent"], "'text' or 'version'"),
    ({"source": "api", "version": "{{ v }}"}, ["consent", "version"], "consent version"),
    ({"source": "carrier-pigeon", "text": "yes"}, ["consent", "source"], "'form'"),
    ({**FORM, "approved_by": "me"}, ["consent", "approved_by"], ""),
    ("yes", ["consent"], ""),
]


@pytest.mark.parametrize(("consent", "loc", "says"), REFUSED)
def test_the_cli_refuses_a_consent_the_lead_cannot_keep_naming_the_field(
    consent: dict[str, Any] | str, loc: list[str], says: str
) -> None:
    line = json.dumps({"lead_id": "l1", "consent": consent})
    with pytest.raises(ValueError, match=rf"^{re.escape('.'.join(loc))}: .*{re.escape(says)}"):
        parse_line(line, LeadProfile, None)


def test_an_event_at_an_offset_no_zone_has_is_refused_naming_at() -> None:
    """The README's promise holds for events too (one validator): +05:17 is no zone's, +05:45
    (Nepal) and +12:45 (Chatham) are."""
    line = {"lead_id": "l1", "type": "page_view", "at": "2026-11-24T10:00:00+05:17"}
    with pytest.raises(ValueError, match=r"^at: UTC offset \+05:17 is no time zone's"):
        parse_line(json.dumps(line), LeadEvent, None)
    for offset in ("+05:45", "+12:45", "-03:30", "Z"):
        line["at"] = f"2026-11-24T10:00:00{offset}"
        assert parse_line(json.dumps(line), LeadEvent, None)


def test_consents_at_the_bounds_are_taken() -> None:
    for at in ("2000-01-01T00:00:00Z", day_ahead(23), "2026-11-24T10:00:00-12:00", NEPAL):
        given = LeadProfile.from_edge({"lead_id": "l1", "consent": {**FORM, "at": at}}, strict=True)
        assert given.consent is not None and given.consent.text == HOSTILE_TEXT
    ipv6 = LeadProfile.from_edge(
        {"lead_id": "l1", "consent": {**FORM, "ip": "2001:DB8:0:0::7"}}, strict=True
    )
    assert ipv6.consent is not None and ipv6.consent.ip == "2001:db8::7"  # one spelling
    full = {**FORM, "text": "x" * CONSENT_TEXT_MAX, "version": "v" * 64}
    assert LeadProfile.from_edge({"lead_id": "l1", "consent": full}, strict=True).consent


def test_a_csv_takes_consent_columns() -> None:
    lines = [
        "lead_id,email,consent.source,consent.version,consent.at\n",
        "ada,ada@x.example,import,crm-export-2026-10,2026-10-01T00:00:00Z\n",
        "bob,bob@x.example,,,\n",
    ]
    rows = [json.loads(r) for r in rows_as_json(lines) if r]
    assert rows[0]["consent"] == {
        "source": "import",
        "version": "crm-export-2026-10",
        "at": "2026-10-01T00:00:00Z",
    }
    assert "consent" not in rows[1]
    assert LeadProfile.from_edge(rows[0]).consent is not None


async def test_the_api_refuses_bad_consents_with_422_and_keeps_good_ones_verbatim(
    api: Api,
) -> None:
    lead = lead_id("consent")
    strictly = [({**FORM, "at": 1700000000}, ["consent", "at"], "valid datetime")]
    refused = [*REFUSED, *strictly]  # JSON over HTTP is read strictly: a number is no date
    items = [{"lead_id": lead, "consent": consent} for consent, _, _ in refused]
    answer = await api.http.post("/api/leads", json=items, headers=api.auth("ingest"))
    assert answer.status_code == 422, answer.text
    results = answer.json()["items"]
    assert all(r["status"] == "rejected" for r in results)
    for result, (_, loc, says) in zip(results, refused, strict=True):
        assert result["errors"][0]["loc"] == loc and says in result["errors"][0]["msg"], result

    huge = {"lead_id": lead, "consent": {**FORM, "text": "x" * 3_000_000}}
    answer = await api.http.post("/api/leads", json=huge, headers=api.auth("ingest"))
    assert answer.status_code == 422 and answer.json()["items"][0]["errors"][0]["loc"] == [
        "consent",
        "text",
    ]

    good = {"lead_id": lead, "email": "pat@consent.example", "consent": FORM}
    answer = await api.http.post("/api/leads", json=good, headers=api.auth("ingest"))
    assert answer.status_code == 200, answer.text
    handle = api.engine.client.get_workflow_handle(wf(lead))
    state = await wait_for_state(handle, lambda s: bool(s.consents))
    [record] = state.consents
    assert (record.source, record.text, record.ip) == ("form", HOSTILE_TEXT, "203.0.113.7")
    assert state.profile.consent is None

    shown = await api.http.get(f"/api/leads/{lead}", headers=api.auth("marketer"))
    assert shown.json()["state"]["consents"][0]["text"] == HOSTILE_TEXT

    db = make_engine(api.engine.database_url)
    for _ in range(100):
        with Session(db) as session:
            rows = session.exec(select(ConsentRow).where(ConsentRow.lead_id == lead)).all()
        if rows:
            break
        await asyncio.sleep(0.1)
    [row] = rows
    assert (row.source, row.text, row.ip) == ("form", HOSTILE_TEXT, "203.0.113.7")
    personal = {c.name for c in table_of(ConsentRow).columns if c.info.get("personal")}
    assert personal == {"text", "ip"}
