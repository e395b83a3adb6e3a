"""The tracker's endpoints over real HTTP, against a real dev server with a worker (issue 16):
an anonymous visitor's events are kept, scored nothing, and reach the lead on identification
in time order with their original times, each once even when a beacon is sent again; a known
visitor's events go straight to its lead; what must store nothing stores nothing (another
origin, a bot, GPC, DNT, consent denied, a revoked key); bad fields are refused by name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from nurture.access.visitor_links import IdentifyLinks
from nurture.domain.leads import workflow_id_for
from nurture.store.db import make_engine
from nurture.store.read_model import LeadEventRecord
from nurture.store.tracking import Visitor, VisitorEvent, create_site, revoke_site
from tests.conftest import TEST_SECRET, lead_state, wait_for_state

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine as SqlEngine

    from nurture.store.tracking import Site
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]

ORIGIN = "https://www.example.test"
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PAGE = {"Origin": ORIGIN, "User-Agent": BROWSER, "Content-Type": "text/plain"}


def database(api: Api) -> SqlEngine:
    return make_engine(api.engine.database_url)


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def visit(kind: str, path: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "type": kind,
        "at": stamp(at),
        "url": f"{ORIGIN}{path}",
        "title": path.strip("/") or "home",
        **extra,
    }


def new_site(api: Api, name: str | None = None, **kwargs: Any) -> Site:
    db = database(api)
    return create_site(db, name or f"www-{uuid.uuid4().hex[:6]}", [ORIGIN], **kwargs)


def kept_for(api: Api, site: Site, visitor: str) -> list[VisitorEvent]:
    from nurture.store.tracking import visitor_key

    with Session(database(api)) as session:
        key = visitor_key(site.site_key, visitor)
        return list(
            session.exec(
                select(VisitorEvent)
                .where(col(VisitorEvent.visitor_key) == key)
                .order_by(col(VisitorEvent.at))
            ).all()
        )


def visitors_stored(api: Api, site: Site) -> int:
    with Session(database(api)) as session:
        return session.exec(
            select(func.count()).select_from(Visitor).where(col(Visitor.site_key) == site.site_key)
        ).one()


async def send(api: Api, site: Site, body: dict[str, Any], **headers: str) -> httpx.Response:
    import json

    return await api.http.post(
        f"/t/{site.site_key}", content=json.dumps(body), headers={**PAGE, **headers}
    )


async def identify(api: Api, site: Site, body: dict[str, Any], **headers: str) -> httpx.Response:
    import json

    return await api.http.post(
        f"/t/{site.site_key}/identify", content=json.dumps(body), headers={**PAGE, **headers}
    )


async def test_anonymous_visits_reach_the_lead_in_order_with_their_times_once(api: Api) -> None:
    site = new_site(api)
    visitor = uuid.uuid4().hex
    day_one = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    home = visit("page_view", "/", day_one)
    blog = visit("page_view", "/blog/why-nurture", day_one + timedelta(minutes=3))
    pricing = visit("page_view", "/pricing", day_one + timedelta(minutes=7))
    back = visit("page_view", "/", day_one + timedelta(days=1, hours=1))
    paper = visit("download", "/whitepaper.pdf", day_one + timedelta(days=1, hours=1, minutes=2))

    first = await send(api, site, {"visitor": visitor, "events": [home, blog, pricing]})
    assert first.status_code == 202, first.text
    assert first.json() == {"stored": 3, "dropped": 0}
    assert first.headers["access-control-allow-origin"] == ORIGIN
    # The next day (sent out of order), and the first beacon retried: nothing counted twice.
    later = await send(api, site, {"visitor": visitor, "events": [paper, back]})
    again = await send(api, site, {"visitor": visitor, "events": [home, blog, pricing]})
    assert later.json() == {"stored": 2, "dropped": 0}
    assert again.json() == {"stored": 0, "dropped": 3}
    kept = kept_for(api, site, visitor)
    assert [e.type for e in kept] == ["page_view"] * 4 + ["download"]
    assert [e.at.replace(tzinfo=UTC) for e in kept] == [
        datetime.fromisoformat(e["at"]) for e in (home, blog, pricing, back, paper)
    ]

    email = f"ada.{uuid.uuid4().hex[:8]}@example.com"
    answer = await identify(api, site, {"visitor": visitor, "email": email, "first_name": "Ada"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"identified": True}  # the lead id is never told to the page
    lead = IdentifyLinks(TEST_SECRET, "").new_lead_id(email)
    handle = api.engine.client.get_workflow_handle(workflow_id_for(lead))
    state = await wait_for_state(handle, lambda s: s.events_applied == 5)
    assert state.profile.email == email and state.profile.first_name == "Ada"
    assert kept_for(api, site, visitor) == []  # handed over: the lead's now
    rules = [(e.rule, e.points) for e in state.score.recent]
    assert rules == [  # tests/fixtures/rules/scoring.yaml
        ("page_view", 1),
        ("blog_visit", 0),  # the blog apart from the site
        ("pricing page", 7),
        ("page_view", 1),
        ("return_visit", 3),  # the next day: a return visit, seen in its true order
        ("download", 10),
    ]
    assert [e.at for e in state.score.recent] == [
        datetime.fromisoformat(e["at"]) for e in (home, blog, pricing, back, back, paper)
    ]
    assert state.score.last_visit_at == datetime.fromisoformat(back["at"])
    anonymous = [t.detail for t in state.timeline if t.kind == "event"]
    assert all("anonymous visit" in text for text in anonymous), anonymous

    # The retried beacon after identification, and the same identification again: still once.
    again = await send(api, site, {"visitor": visitor, "events": [home, blog]})
    await identify(api, site, {"visitor": visitor, "email": email})
    now_event = visit("page_view", "/pricing", datetime.now(UTC))
    straight = await send(api, site, {"visitor": visitor, "events": [now_event]})
    assert straight.json() == {"stored": 1, "dropped": 0}
    state = await wait_for_state(handle, lambda s: s.events_applied + s.duplicates_ignored >= 8)
    assert state.events_applied == 6
    with Session(database(api)) as session:
        rows = session.exec(
            select(LeadEventRecord).where(col(LeadEventRecord.lead_id) == lead)
        ).all()
    assert len(rows) == 6

    found = CliRunner().invoke(
        __import__("nurture.cli.app", fromlist=["app"]).app,
        ["lead", "find", "--email", email.upper(), "--json"],
        env={"NURTURE_DATABASE_URL": api.engine.database_url},
    )
    assert found.exit_code == 0, found.output
    assert '"lead_id": "' + lead + '"' in found.output


async def test_what_must_store_nothing_stores_nothing(api: Api) -> None:
    site = new_site(api)
    visitor = uuid.uuid4().hex
    body = {"visitor": visitor, "events": [visit("page_view", "/", datetime.now(UTC))]}

    other_origin = await send(api, site, body, Origin="https://evil.example")
    assert other_origin.status_code == 403
    assert "access-control-allow-origin" not in other_origin.headers
    no_origin = await api.http.post(
        f"/t/{site.site_key}", json=body, headers={"User-Agent": BROWSER}
    )
    assert no_origin.status_code == 403
    unknown = await api.http.post("/t/sk_nosuchkey/identify", json=body, headers=PAGE)
    assert unknown.status_code == 403
    bot = await send(
        api, site, body, **{"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}
    )
    headless = await send(
        api, site, body, **{"User-Agent": BROWSER.replace("Chrome/", "HeadlessChrome/")}
    )
    gpc = await send(api, site, body, **{"Sec-GPC": "1"})
    dnt = await send(api, site, body, DNT="1")
    denied = await send(api, site, {**body, "consent": "denied"})
    assert [r.status_code for r in (bot, headless, gpc, dnt, denied)] == [204] * 5
    shy = new_site(api, consent_default="denied")
    unasked = await send(api, shy, body)
    assert unasked.status_code == 204
    assert visitors_stored(api, site) == 0 and visitors_stored(api, shy) == 0
    granted = await send(api, shy, {**body, "consent": "granted"})
    assert granted.status_code == 202 and visitors_stored(api, shy) == 1

    revoke_site(database(api), site.name)
    deadline = datetime.now(UTC) + timedelta(seconds=8)  # keys are cached up to 5 s
    while (await send(api, site, body)).status_code != 403:
        assert datetime.now(UTC) < deadline, "a revoked key kept working"
    stored = visitors_stored(api, site)
    newcomer = {**body, "visitor": uuid.uuid4().hex}
    assert (await send(api, site, newcomer)).status_code == 403
    assert visitors_stored(api, site) == stored


def one(**fields: Any) -> dict[str, Any]:
    """A body whose one event is ``fields`` over a good page view."""
    event = {"id": "e" * 10, "type": "page_view", "at": "2026-11-24T10:00:00Z", **fields}
    return {"events": [event]}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"visitor": "short"}, "visitor", "String should match pattern"),
        ({"events": []}, "events", "at least 1 item"),
        (one(at="2026-11-24"), "events.0", "at: not a date and time"),
        (one(at="9999-12-31T23:59:59Z"), "events.0", "more than a day in the future"),
        (one(type="pricing peek"), "events.0.type", "String should match pattern"),
        (one(type="teleported"), "events.0.type", "unknown event type 'teleported'"),
        (one(title="a\x00b"), "events.0", "U+0000"),
        (one(props={"a": [[[[[[[[[[1]]]]]]]]]]}), "events.0", "nested deeper than 8"),
    ],
)
async def test_a_bad_field_is_refused_by_name(
    api: Api, change: dict[str, Any], field: str, says: str
) -> None:
    site = new_site(api)
    body = {"visitor": uuid.uuid4().hex, "events": [visit("page_view", "/", datetime.now(UTC))]}
    answer = await send(api, site, {**body, **change})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(field), answer.text
    assert says in answer.json()["detail"], answer.text
    assert answer.headers["access-control-allow-origin"] == ORIGIN  # the page can read why
    assert visitors_stored(api, site) == 0


async def test_a_visitor_who_identifies_as_someone_else_is_theirs_from_then_on(api: Api) -> None:
    site = new_site(api)
    visitor = uuid.uuid4().hex
    start = datetime.now(UTC) - timedelta(hours=3)
    first = f"first.{uuid.uuid4().hex[:8]}@example.com"
    second = f"second.{uuid.uuid4().hex[:8]}@example.com"
    await send(api, site, {"visitor": visitor, "events": [visit("page_view", "/a", start)]})
    assert (await identify(api, site, {"visitor": visitor, "email": first})).status_code == 200
    links = IdentifyLinks(TEST_SECRET, "")
    lead_a, lead_b = links.new_lead_id(first), links.new_lead_id(second)
    handle_a = api.engine.client.get_workflow_handle(workflow_id_for(lead_a))
    await wait_for_state(handle_a, lambda s: s.events_applied == 1)
    # Lead B exists already (a form elsewhere); the browser is then B's: the signed link says so.
    await identify(api, site, {"visitor": uuid.uuid4().hex, "email": second})
    handle_b = api.engine.client.get_workflow_handle(workflow_id_for(lead_b))
    await wait_for_state(handle_b, lambda s: s.profile.email == second)
    token = links.token_for(lead_b)
    assert (await identify(api, site, {"visitor": visitor, "token": token})).status_code == 200
    await send(
        api, site, {"visitor": visitor, "events": [visit("page_view", "/b", datetime.now(UTC))]}
    )
    state_b = await wait_for_state(handle_b, lambda s: s.events_applied == 1)
    assert state_b.score.recent[-1].detail == f"{ORIGIN}/b"
    assert (await lead_state(handle_a)).events_applied == 1  # A keeps what it had, no more

    forged = await identify(api, site, {"visitor": visitor, "token": token[:-2] + "xx"})
    assert forged.status_code == 422 and forged.json()["detail"].startswith("token")
    nobody = await identify(api, site, {"visitor": visitor, "lead_id": "no-such-lead-here"})
    assert nobody.status_code == 422 and nobody.json()["detail"].startswith("lead_id")
    who = await identify(api, site, {"visitor": visitor})
    assert who.status_code == 422 and "email" in who.json()["detail"]
    bad_email = await identify(api, site, {"visitor": visitor, "email": "not-an-address"})
    assert bad_email.status_code == 422 and "email" in bad_email.json()["detail"]
