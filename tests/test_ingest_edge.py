"""The ingest edge refuses what a lead cannot take, with a 4xx naming the field and what is
expected, and whatever it accepts reaches the lead (issue 13: findings 4, 5, 7, 9, 11, 12, 13,
14, 21, 27). HTTP tests run against a real dev server with a worker."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from nurture.cli.ingest import parse_line
from nurture.client.ingest import LeadDelivery
from nurture.domain.leads import (
    CUSTOM_KEYS_MAX,
    CUSTOM_TEXT_MAX,
    PROFILE_BYTES_MAX,
    PROFILE_FIELDS,
    TEXT_MAX,
    LeadEvent,
    LeadProfile,
)
from nurture.web.app import BODY_MAX, BULK_BODY_MAX, WEBHOOK_BODY_MAX
from nurture.web.ingest_api import IngestApi
from tests.conftest import lead_id, wait_for_state

if TYPE_CHECKING:
    from tests.web_api import Api

pytest_plugins = ["tests.web_api"]  # the `api` fixture: the service with a worker


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def only_error(answer: Any) -> dict[str, Any]:
    (item,) = answer.json()["items"]
    assert item["status"] == "rejected", item
    (error,) = item["errors"]
    return dict(error)


async def post_csv(api: Api, text: str) -> Any:
    headers = {**api.auth("marketer"), "Content-Type": "text/csv"}
    return await api.http.post("/api/leads/import", content=text, headers=headers)


async def post_events(api: Api, items: object, **headers: str) -> Any:
    return await api.http.post("/api/events", json=items, headers={**api.auth("ingest"), **headers})


async def test_impossible_event_times_are_refused_naming_the_field(api: Api) -> None:
    """Finding 4: year 9999, offsets that push a time out of range, and times far in the past
    or future are refused with 422 on `at`; the lead keeps answering and applies the next
    event."""
    lead = lead_id("at")
    for at in (
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "2026-11-24T10:00:00+23:30",
        "1970-01-01T00:00:00Z",
        (datetime.now(UTC) + timedelta(days=3)).isoformat(),
    ):
        answer = await post_events(api, {"lead_id": lead, "type": "page_view", "at": at})
        assert answer.status_code == 422, (at, answer.text)
        error = only_error(answer)
        assert error["loc"] == ["at"] and error["msg"], at
    now = datetime.now(UTC).isoformat()
    answer = await post_events(api, {"lead_id": lead, "type": "page_view", "at": now})
    assert answer.status_code == 200, answer.text
    handle = api.engine.client.get_workflow_handle(f"lead-{lead}")
    await wait_for_state(handle, lambda s: s.events_applied == 1)
    seen = await api.http.get(f"/api/leads/{lead}", headers=api.auth("marketer"))
    assert seen.status_code == 200


async def test_profiles_are_bounded_so_a_lead_never_outgrows_a_payload(api: Api) -> None:
    """Findings 5 and 14: 1.2 MB custom fields and a 2.5 MB company are refused with 422 on
    the field (before, both were accepted and broke the lead, or answered 503 "retry")."""
    lead = lead_id("big")
    for update in (
        {"custom": {"notes": "x" * 1_200_000}},
        {"custom": {f"k{i}": i for i in range(CUSTOM_KEYS_MAX + 1)}},
        {"company": "x" * 2_500_000},
    ):
        answer = await api.http.post(
            "/api/leads", json={"lead_id": lead, **update}, headers=api.auth("ingest")
        )
        assert answer.status_code == 422, answer.text
        error = only_error(answer)
        assert error["loc"] == [next(iter(update))] and "at most" in error["msg"]
    fine = {"lead_id": lead, "company": "x" * TEXT_MAX["company"]}
    answer = await api.http.post("/api/leads", json=fine, headers=api.auth("ingest"))
    assert answer.status_code == 200, answer.text


async def test_temporal_refusing_an_item_is_a_permanent_rejection_not_a_retry(api: Api) -> None:
    """Finding 14: whatever Temporal refuses as too large ("Blob data size exceeds limit") is
    reported as rejected (4xx), never as failed/503 that clients retry forever. The profile is
    built in code, past the edge bounds, to reach Temporal's own limit."""
    ingest = IngestApi(
        api.engine.client,
        lambda: None,
        may_ingest=lambda: None,
        may_import=lambda: None,
        task_queue=api.engine.task_queue,
    )
    huge = LeadProfile(lead_id=lead_id("huge"), company="x" * 2_500_000)
    answer = await ingest._deliver([(0, huge)])
    body = json.loads(bytes(answer.body))
    assert answer.status_code == 422, body
    assert body["items"][0]["status"] == "rejected" and body["failed"] == 0
    assert "do not retry" in body["items"][0]["errors"][0]["msg"]

    # The same pipeline feeds `nurture lead add`: the lead's next profile is held back (sent
    # after the refused one, it would overtake it), another lead's goes on.
    delivery = LeadDelivery(api.engine.client, api.engine.task_queue)
    after = LeadProfile(lead_id=huge.lead_id, company="Acme")
    other = LeadProfile(lead_id=lead_id("other"), company="Acme")
    outcomes = await asyncio.gather(*(delivery.deliver(p) for p in (huge, after, other)))
    assert [o.status for o in outcomes] == ["rejected", "failed", "accepted"]
    assert "an earlier item for this lead failed" in (outcomes[1].reason or "")


def test_merged_profiles_stay_under_the_payload_bound() -> None:
    """Finding 5: custom fields merge, but a lead keeps at most CUSTOM_KEYS_MAX of them (new
    ones beyond are left out, and said so by custom_overflow); a null removes one. The largest
    profile the edge lets a lead build serializes under PROFILE_BYTES_MAX."""
    profile = LeadProfile(lead_id="l1")
    for batch in range(3):
        custom = {f"k{batch}_{i}": "v" * CUSTOM_TEXT_MAX for i in range(CUSTOM_KEYS_MAX)}
        update = LeadProfile.from_edge({"lead_id": "l1", "custom": custom})
        if batch:
            assert profile.custom_overflow(update) == list(custom)
        profile = profile.merged(update)
    assert len(profile.custom) == CUSTOM_KEYS_MAX
    full = {name: "x" * TEXT_MAX.get(name, 0) for name in PROFILE_FIELDS if name in TEXT_MAX}
    full.update(email="a" * 240 + "@corp.example", campaign="c" * 64, timezone="UTC")
    full.update(phone="1" * 40)
    profile = profile.merged(
        LeadProfile.from_edge({"lead_id": "l1", **full, "company_size": 10_000_000, "budget": 1e15})
    )
    assert len(profile.model_dump_json().encode()) < PROFILE_BYTES_MAX
    freed = profile.merged(LeadProfile.from_edge({"lead_id": "l1", "custom": {"k0_0": None}}))
    assert "k0_0" not in freed.custom and len(freed.custom) == CUSTOM_KEYS_MAX - 1


async def test_a_partial_update_changes_only_the_fields_sent(api: Api) -> None:
    """Finding 7: `{"lead_id": …, "title": "CTO"}` after a full profile keeps email, names,
    company and region; an explicit null clears a field; an empty CSV cell is "not sent"."""
    lead = lead_id("pu")
    full = {
        "lead_id": lead,
        "email": "pat@corp.example",
        "first_name": "Pat",
        "last_name": "Lee",
        "company": "Corp",
        "region": "EMEA",
        "custom": {"plan": "gold"},
    }
    handle = api.engine.client.get_workflow_handle(f"lead-{lead}")
    for update in (full, {"lead_id": lead, "title": "CTO"}):
        answer = await api.http.post("/api/leads", json=update, headers=api.auth("ingest"))
        assert answer.status_code == 200, answer.text
    state = await wait_for_state(handle, lambda s: s.profile.title == "CTO")
    kept = state.profile.model_dump(include=set(full) - {"lead_id"})
    assert kept == {k: v for k, v in full.items() if k != "lead_id"}

    cleared = {"lead_id": lead, "company": None, "custom": {"plan": None, "seats": 5}}
    answer = await api.http.post("/api/leads", json=cleared, headers=api.auth("ingest"))
    assert answer.status_code == 200, answer.text
    state = await wait_for_state(handle, lambda s: s.profile.company is None)
    assert state.profile.custom == {"seats": 5} and state.profile.email == full["email"]

    csv = f"lead_id,email,title,company\n{lead},,VP,\n"
    answer = await post_csv(api, csv)
    assert answer.status_code == 200, answer.text
    state = await wait_for_state(handle, lambda s: s.profile.title == "VP")
    assert state.profile.email == full["email"] and state.profile.region == "EMEA"


def test_an_update_recorded_before_partial_updates_replaces_every_field() -> None:
    """Finding 7, replay: a profile signal from an old history has no sent_fields and is
    applied as it was then (every field replaced), so old histories replay unchanged."""
    before = LeadProfile(lead_id="l1", email="a@corp.example", region="EMEA", custom={"a": 1})
    old_payload = '{"lead_id":"l1","email":null,"title":"CTO","region":null,"custom":{"b":2}}'
    after = before.merged(LeadProfile.model_validate_json(old_payload))
    assert (after.email, after.region, after.title) == (None, None, "CTO")
    assert after.custom == {"a": 1, "b": 2}


def _refusal(model: type[LeadEvent | LeadProfile], raw: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        model.from_edge(raw)
    (error,) = caught.value.errors()
    return dict(error)


def test_no_personal_data_in_lead_ids_or_campaign_names() -> None:
    """Finding 11: an email-shaped lead id is refused, saying why and what to use; campaign
    names (the LeadCampaign search attribute) are slugs."""
    for model, raw in (
        (LeadEvent, {"lead_id": "lead-jane.doe@acme.com", "type": "page_view"}),
        (LeadProfile, {"lead_id": "jane@acme.com"}),
    ):
        error = _refusal(model, raw)
        assert error["loc"] == ("lead_id",)
        assert "personal data" in error["msg"] and "CRM's record id" in error["msg"]
    for model, raw in (
        (LeadEvent, {"lead_id": "l1", "type": "page_view", "campaign": "Jane Doe's list"}),
        (LeadProfile, {"lead_id": "l1", "campaign": "<b>q4</b>"}),
    ):
        error = _refusal(model, raw)
        assert error["loc"] == ("campaign",) and "slug" in error["msg"]
    assert LeadEvent.from_edge({"lead_id": "l1", "type": "x", "campaign": "webinar-q4"})


def test_the_cli_refuses_what_the_http_edge_refuses() -> None:
    """Findings 4, 11, 12, 13, 27: `nurture event` and `nurture lead add` validate lines the
    same way as the HTTP edge."""
    line = json.dumps({"lead_id": "l1", "type": "page_view", "at": "9999-12-31T23:59:59Z"})
    with pytest.raises(ValueError, match=r"^at: more than a day in the future"):
        parse_line(line, LeadEvent, None)
    with pytest.raises(ValueError, match=r"^timezone: unknown time zone 'Mars/Olympus'"):
        parse_line(json.dumps({"lead_id": "l1", "timezone": "Mars/Olympus"}), LeadProfile, None)
    with pytest.raises(ValueError, match=r"^lead_id: a lead id must not contain '@'"):
        parse_line(json.dumps({"lead_id": "a@b.example"}), LeadProfile, None)
    with pytest.raises(ValueError, match=r"^props: nested deeper than 8 levels"):
        parse_line(json.dumps({"lead_id": "l1", "type": "x", "props": nested(9)}), LeadEvent, None)
    with pytest.raises(ValueError, match="nested too deeply to read"):
        parse_line("[" * 100_000, LeadEvent, None)  # a crash of the command, before


async def test_deep_props_and_long_csv_cells_are_4xx_saying_what_is_wrong(api: Api) -> None:
    """Findings 12 and 13: props nested 220 deep (accepted, then dropped by the worker) and
    300 deep (a 500) are refused on `props`; a CSV cell over 131,072 characters (a 500) is
    that row's error while the other rows are applied."""
    lead = lead_id("deep")
    for depth in (9, 220, 300):
        event = {"lead_id": lead, "type": "page_view", "props": nested(depth)}
        answer = await post_events(api, event)
        assert answer.status_code == 422, (depth, answer.text)
        error = only_error(answer)
        assert error["loc"] == ["props"] and "nested deeper than 8" in error["msg"]
    answer = await post_events(api, {"lead_id": lead, "type": "page_view", "props": nested(8)})
    assert answer.status_code == 200, answer.text

    other = lead_id("csv")
    csv = f"lead_id,company\n{lead},{'x' * 140_000}\n{other},Corp\n"
    answer = await post_csv(api, csv)
    assert answer.status_code == 200, answer.text
    bad, good = answer.json()["items"]
    assert bad["status"] == "rejected" and "field limit (131072)" in bad["errors"][0]["msg"]
    assert good["status"] == "accepted"
    only_bad = await post_csv(api, f"lead_id,company\n{lead},{'x' * 140_000}\n")
    assert only_bad.status_code == 422, only_bad.text


async def test_an_unknown_time_zone_is_refused(api: Api) -> None:
    """Finding 27: `Mars/Olympus` was accepted and the lead silently used the default zone."""
    answer = await api.http.post(
        "/api/leads",
        json={"lead_id": lead_id("tz"), "timezone": "Mars/Olympus"},
        headers=api.auth("ingest"),
    )
    assert answer.status_code == 422
    error = only_error(answer)
    assert error["loc"] == ["timezone"] and "Europe/Berlin" in error["msg"]


def test_addresses_a_mail_provider_refuses_are_refused_at_the_edge() -> None:
    """Found trying it from outside (issue 14): '{{7*7}}<b>@evil.example' was accepted and
    SendGrid refused every touch to it later. Addresses recorded before stay readable."""
    for address in ("{{7*7}}<b>@evil.example", "a b@x.com", "ann@localhost", "ann..b@x.com"):
        error = _refusal(LeadProfile, {"lead_id": "l1", "email": address})
        assert error["loc"] == ("email",) and "not a valid email address" in error["msg"]
    for address in ("o'brien+news@example.co.uk", "jos\u00e9@exa\u00f1o.es", "x@corp.example"):
        assert LeadProfile.from_edge({"lead_id": "l1", "email": address}).email == address
    recorded = LeadProfile.model_validate({"lead_id": "l1", "email": "<b>@evil.example"})
    assert recorded.email == "<b>@evil.example"  # in a running lead's history: replays


async def test_json_bodies_are_read_whatever_content_type_curl_sends(api: Api) -> None:
    """Finding 21: the README's `curl -d '{…}'` sends application/x-www-form-urlencoded; the
    JSON endpoints read the body as JSON (also text/plain, or no type); the spec still says
    JSON."""
    lead = lead_id("curl")
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        body = json.dumps({"lead_id": lead, "type": "page_view"})
        headers = api.auth("ingest") | ({"Content-Type": content_type} if content_type else {})
        answer = await api.http.post("/api/events", content=body, headers=headers)
        assert answer.status_code == 200, (content_type, answer.text)
    spec = (await api.http.get("/openapi.json")).json()
    assert list(spec["paths"]["/api/events"]["post"]["requestBody"]["content"]) == [
        "application/json"
    ]


async def _raw_post(
    base_url: str, path: str, head: dict[str, str], body: bytes, repeat: int
) -> str:
    """POST over a plain socket, ``body`` sent ``repeat`` times (as chunks when chunked) until
    the server answers; returns what it answered."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}"]
    lines += [f"{name}: {value}" for name, value in head.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    chunked = head.get("Transfer-Encoding") == "chunked"
    answer = b""

    async def send_body() -> None:
        for _ in range(repeat):
            if answer:  # the server answered: stop, as a client would
                return
            writer.write(f"{len(body):x}\r\n".encode() + body + b"\r\n" if chunked else body)
            await writer.drain()

    sending = asyncio.create_task(send_body())
    try:
        async with asyncio.timeout(20):
            while b"}" not in answer:  # the end of the JSON detail
                data = await reader.read(65536)
                if not data:
                    break
                answer += data
    except ConnectionResetError:  # the server closed on a body it will not read
        pass
    finally:
        sending.cancel()
        writer.close()
    return answer.decode()


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/api/events", BULK_BODY_MAX),
        ("/api/leads/import", BULK_BODY_MAX),
        ("/api/leads/some-lead/accept", BODY_MAX),
        ("/webhooks/sendgrid", WEBHOOK_BODY_MAX),  # the README's figures: 16, 5 and 1 MiB
    ],
)
async def test_bodies_over_the_limit_are_refused_before_parsing(
    api: Api, path: str, limit: int
) -> None:
    """Finding 9: by Content-Length before a byte is read, and while streaming a chunked body
    (no Content-Length), on every endpoint: 413 with a message saying what to do."""
    auth = api.auth("operator")
    declared = await _raw_post(
        api.engine.web_url or "", path, {**auth, "Content-Length": str(limit + 1)}, b"", 0
    )
    assert declared.startswith("HTTP/1.1 413"), declared[:300]
    assert "split it into smaller requests" in declared
    streamed = await _raw_post(
        api.engine.web_url or "",
        path,
        {**auth, "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        b" " * (256 * 1024),
        repeat=limit // (256 * 1024) + 8,
    )
    assert streamed.startswith("HTTP/1.1 413"), streamed[:300]
