"""Consent end to end: every marketing email carries a signed one-click unsubscribe link and the
List-Unsubscribe headers; the link, SendGrid's signed Event Webhook and the global suppression
list each stop the next touch. Real parts: time-skipping Temporal, the HTTP service on loopback,
the SendGrid stand-in posting signed events, SQLite."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from nurture.standins.sendgrid_standin import RecordedMessage, SendGridStandIn, encode_events
from nurture.store.db import Suppression, WebhookEvent, make_engine
from nurture.store.salted import address_digest, salt_of
from nurture.web.webhook_verify import WebhookRefused, WebhookVerifier
from tests.conftest import (
    Engine,
    lead_id,
    lead_state,
    running_engine,
    wait_for_email,
    wait_for_state,
)

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


async def first_touch(
    env: WorkflowEnvironment, engine: Engine, lead: str, email: str
) -> tuple[WorkflowHandle, RecordedMessage]:
    """A general-segment lead and its first touch (due 1 h after it was created)."""
    handle = await engine.profile(lead_id=lead, email=email, first_name="Uma")
    await env.sleep(timedelta(hours=2))
    sent = engine.standin.messages_with(lead_id=lead)
    assert len(sent) == 1, [m.subject for m in sent]
    return handle, sent[0]


KNOWN_ADDRESSES = ("uma@corp.example", "sam@corp.example", "lee@corp.example")


def suppressions(engine: Engine) -> dict[str, str]:
    """The list, each entry named by the address whose digest it holds (the list itself keeps
    digests only: an entry for any other address shows as its digest)."""
    database = make_engine(engine.database_url)
    names = {address_digest(salt_of(database), a): a for a in KNOWN_ADDRESSES}
    with Session(database) as session:
        rows = session.exec(select(Suppression)).all()
        return {names.get(row.email_hash, row.email_hash): row.reason for row in rows}


async def emit(standin: SendGridStandIn, message_id: str, *events: dict[str, object]):  # type: ignore[no-untyped-def]
    # The stand-in posts synchronously; our HTTP service answers on this event loop.
    return await asyncio.to_thread(standin.emit_events, message_id, list(events))


async def test_every_touch_carries_a_signed_one_click_unsubscribe_that_stops_the_next_touch(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path, web=True) as engine:
        handle, touch = await first_touch(time_skipping_env, engine, lead, "uma@corp.example")
        header = touch.headers["List-Unsubscribe"]
        assert header.startswith(f"<{engine.web_url}/u/") and header.endswith(">")
        assert touch.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = header[1:-1]
        assert f'href="{link}"' in touch.contents["text/html"]
        assert link in touch.contents["text/plain"]
        assert touch.custom_args["lead_id"] == lead
        assert touch.custom_args["touch_id"] == touch.custom_args["nurture_key"]

        async with httpx.AsyncClient() as http:
            tampered = await http.post(link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb"))
            assert tampered.status_code == 403 and "does not work" in tampered.text
            page = await http.get(link)  # a link scanner's GET must not unsubscribe anyone
            assert page.status_code == 200 and "uma@corp.example" in page.text
            assert suppressions(engine) == {}
            assert (await lead_state(handle)).stage == "nurturing"
            done = await http.post(
                link,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        assert done.status_code == 200 and "You are unsubscribed" in done.text
        assert suppressions(engine) == {"uma@corp.example": "unsubscribe"}
        state = await wait_for_state(handle, lambda s: s.stage == "suppressed")
        assert state.email_suppressed == "unsubscribe"
        await time_skipping_env.sleep(timedelta(days=30))  # the next touches come due
        state = await lead_state(handle)

    assert len(standin.messages_with(lead_id=lead)) == 1
    assert state.touches_sent == 1 and state.touches_skipped >= 1


async def test_the_suppression_list_is_consulted_before_every_send(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    first, second = lead_id(), lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path, web=True) as engine:
        _, touch = await first_touch(time_skipping_env, engine, first, "Sam@Corp.example")
        delivery = await emit(standin, touch.message_id, {"event": "spamreport"})
        assert delivery.status == 200
        # Same person, entered again under another lead id: the list is global, by address.
        handle = await engine.profile(lead_id=second, email="sam@corp.example")
        await time_skipping_env.sleep(timedelta(hours=2))
        state = await wait_for_state(handle, lambda s: s.stage == "suppressed")

    assert standin.messages_with(lead_id=second) == []
    assert state.touches_sent == 0 and state.touches_skipped == 1
    assert state.email_suppressed is not None and "spamreport" in state.email_suppressed
    assert suppressions(engine) == {"sam@corp.example": "spamreport"}


async def test_signed_opens_and_clicks_score_and_link_rules_score_more(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path, web=True) as engine:
        handle, touch = await first_touch(time_skipping_env, engine, lead, "ola@corp.example")
        before = (await lead_state(handle)).score.total
        delivery = await emit(
            standin,
            touch.message_id,
            {"event": "delivered"},
            {"event": "open"},
            {"event": "click", "url": "https://nurture.example/pricing?utm_source=x"},
            {"event": "click", "url": "https://nurture.example/blog/post"},
        )
        assert delivery.status == 200
        summary = json.loads(delivery.response_body)
        assert summary["applied"] == 3 and summary["recorded"] == 1
        # open 1 + pricing link 12 (a link rule for email_click) + other click 5
        state = await wait_for_state(handle, lambda s: s.score.total == before + 18)
        rules = [e.rule for e in state.score.recent[-3:]]
        assert rules == ["email_open", "clicked pricing link", "email_click"]

        again = await emit(standin, touch.message_id, {"event": "open", "sg_event_id": "dup-1"})
        twice = await emit(  # another post (SendGrid re-batches) with the same event in it
            standin,
            touch.message_id,
            {"event": "open", "sg_event_id": "dup-1"},
            {"event": "delivered"},
        )
        assert json.loads(again.response_body)["applied"] == 1
        assert json.loads(twice.response_body)["duplicates"] == 1
        await asyncio.sleep(0.3)
        assert (await lead_state(handle)).score.total == before + 19


async def test_forged_unsigned_stale_and_replayed_posts_are_refused(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path, web=True) as engine:
        handle, touch = await first_touch(time_skipping_env, engine, lead, "kim@corp.example")
        genuine = await emit(standin, touch.message_id, {"event": "open"})
        assert genuine.status == 200
        score = (await wait_for_state(handle, lambda s: s.events_applied == 1)).score.total
        url = f"{engine.web_url}/webhooks/sendgrid"
        click = dict(genuine.events[0], event="click", url="https://x/pricing", sg_event_id="f1")
        forged_body = encode_events([click])
        now = str(int(time.time()))
        async with httpx.AsyncClient() as http:

            async def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
                return await http.post(
                    url, content=body, headers={"Content-Type": "application/json", **headers}
                )

            replayed = await post(genuine.payload, genuine.headers)
            forged = await post(
                forged_body, {SIGNATURE: genuine.signature or "", TIMESTAMP: genuine.timestamp}
            )
            unsigned = await post(forged_body, {})
            stale_ts = str(int(time.time()) - 3600)
            stale = await post(
                forged_body,
                {SIGNATURE: standin.sign(forged_body, stale_ts), TIMESTAMP: stale_ts},
            )
            garbage = await post(forged_body, {SIGNATURE: "not base64!", TIMESTAMP: now})
            # The same signature re-encoded still verifies (base64 ignores the junk): still a
            # replay, because a post is known by its signed content, not its signature text.
            sig = genuine.signature or ""
            reencoded = await post(
                genuine.payload,
                {SIGNATURE: sig[:8] + "!" + sig[8:], TIMESTAMP: genuine.timestamp},
            )
            odd_times = [
                await post(forged_body, {SIGNATURE: "x", TIMESTAMP: ts})
                for ts in ("1e9", "1" + "0" * 400, "9" * 5000, "-1")
            ]
            # A body over the webhook's 5 MiB is refused before it is read (413, and the
            # connection closed under a client still sending): tests/test_ingest_edge.py
            # checks it on raw sockets, by Content-Length and while streaming.
            fresh = await post(
                forged_body, {SIGNATURE: standin.sign(forged_body, now), TIMESTAMP: now}
            )

        assert replayed.status_code == 403 and "replayed" in replayed.json()["detail"]
        assert forged.status_code == 403 and "forged" in forged.json()["detail"]
        assert unsigned.status_code == 403 and "unsigned" in unsigned.json()["detail"]
        assert stale.status_code == 403 and "stale" in stale.json()["detail"]
        assert garbage.status_code == 403 and "forged" in garbage.json()["detail"]
        assert reencoded.status_code == 403 and "replayed" in reencoded.json()["detail"]
        assert [r.status_code for r in odd_times] == [403, 403, 403, 403]
        assert fresh.status_code == 200  # the same body, properly signed now, is accepted
        state = await wait_for_state(handle, lambda s: s.events_applied == 2)
        assert state.score.total == score + 12


async def test_events_for_unknown_leads_are_recorded_and_bounces_suppress(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path, web=True) as engine:
        handle, touch = await first_touch(time_skipping_env, engine, lead, "lee@corp.example")
        blocked = await emit(standin, touch.message_id, {"event": "bounce", "type": "blocked"})
        assert json.loads(blocked.response_body)["recorded"] == 1
        assert suppressions(engine) == {}  # a blocked message is temporary: keep emailing
        ghost = dict(blocked.events[0], event="open", sg_event_id="ghost-1", lead_id="ghost-9")
        no_lead = {
            "event": "open",
            "sg_event_id": "ghost-2",
            "email": "x@y.example",
            "category": "touch",
        }
        body = json.dumps([ghost, no_lead, "not an event"]).encode()
        now = str(int(time.time()))
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{engine.web_url}/webhooks/sendgrid",
                content=body,
                headers={SIGNATURE: standin.sign(body, now), TIMESTAMP: now},
            )
        assert answer.status_code == 200
        assert answer.json() == {
            "received": 3,
            "applied": 0,
            "duplicates": 0,
            "unknown_lead": 2,
            "recorded": 0,
            "invalid": 1,
        }
        bounce = await emit(standin, touch.message_id, {"event": "bounce", "type": "bounce"})
        assert json.loads(bounce.response_body)["applied"] == 1
        state = await wait_for_state(handle, lambda s: s.stage == "suppressed")

    assert state.email_suppressed == "bounce"
    assert suppressions(engine) == {"lee@corp.example": "bounce"}
    with Session(make_engine(engine.database_url)) as session:
        rows = {r.sg_event_id: r for r in session.exec(select(WebhookEvent)).all()}
    assert rows["ghost-1"].status == "unknown_lead" and rows["ghost-1"].lead_id == "ghost-9"
    assert "ghost-9" in (rows["ghost-1"].detail or "")
    assert rows["ghost-2"].status == "unknown_lead"
    assert [r.status for r in rows.values() if r.sg_event_id.startswith("invalid:")] == ["invalid"]


async def test_an_unsubscribe_event_stops_the_very_next_scheduled_touch(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path, web=True) as engine:
        handle, touch = await first_touch(time_skipping_env, engine, lead, "ivy@corp.example")
        state = await lead_state(handle)
        assert state.cadence is not None and state.cadence.due_at is not None  # follow-up, 3 d
        delivery = await emit(standin, touch.message_id, {"event": "unsubscribe"})
        assert json.loads(delivery.response_body)["applied"] == 1
        await wait_for_state(handle, lambda s: s.stage == "suppressed")
        await time_skipping_env.sleep(timedelta(days=4))  # past the follow-up's due time
        state = await lead_state(handle)

    assert len(standin.messages_with(lead_id=lead)) == 1
    assert any("follow-up" in t.detail for t in state.timeline if t.kind == "touch skipped")


async def test_only_events_on_marketing_touches_speak_for_the_lead(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """A rep opening the lead's alert is not the lead's interest, a rep's bouncing mailbox
    does not suppress the lead, and clicking the unsubscribe link is not a click that scores;
    an unsubscribe by link and by SendGrid for the same touch counts once."""
    lead = lead_id()
    async with running_engine(time_skipping_env.client, standin, tmp_path, web=True) as engine:
        handle, touch = await first_touch(time_skipping_env, engine, lead, "rae@corp.example")
        link = touch.headers["List-Unsubscribe"][1:-1]
        clicked = await emit(standin, touch.message_id, {"event": "click", "url": link})
        assert json.loads(clicked.response_body)["recorded"] == 1, (
            clicked.response_body,
            clicked.events,
        )
        state = await engine.request_call(lead)
        score = state.score.total
        (alert,) = await wait_for_email(standin, lead, "handoff")  # sent after the update
        on_alert = await emit(
            standin, alert.message_id, {"event": "open"}, {"event": "bounce", "type": "bounce"}
        )
        assert json.loads(on_alert.response_body)["recorded"] == 2
        assert suppressions(engine) == {}
        async with httpx.AsyncClient() as http:
            assert (await http.post(link)).status_code == 200
        unsubscribed = await emit(standin, touch.message_id, {"event": "unsubscribe"})
        assert json.loads(unsubscribed.response_body)["applied"] == 1
        state = await wait_for_state(handle, lambda s: s.duplicates_ignored == 1)

    assert state.score.total == score and state.email_suppressed == "unsubscribe"
    assert state.stage == "assigned"  # still with sales: it can reach sales, just no email
    with Session(make_engine(engine.database_url)) as session:
        details = {r.detail for r in session.exec(select(WebhookEvent)).all()}
    assert "event on a sales alert, not on a marketing email" in details
    assert "click on the unsubscribe link is not interest" in details


def test_a_non_ascii_or_absurd_timestamp_is_a_refusal_not_a_crash(standin: SendGridStandIn) -> None:
    verifier = WebhookVerifier(standin.webhook_public_key)
    for timestamp in ("²", "١٢٣", "9" * 20):
        with pytest.raises(WebhookRefused):
            verifier.verify(b"[]", standin.sign(b"[]", "1"), timestamp)
