"""Website forms over real HTTP against a real dev server with a worker (issue 16, item 5):
``POST /f/{site_key}/{form}`` as a plain HTML post and as the tracker's JSON copy, mapped by the
shipped ``config/forms.yaml``. A post makes or updates the lead (only the fields sent change),
after the visitor's anonymous visits, with consent recorded as evidence; a post sent twice
counts once; bad fields are all named and nothing of the post is applied; bots, honeypots,
other origins, the rate limit and Temporal being down store nothing; forms.yaml edits are
picked up and a broken one is refused with file and line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser
from sqlmodel import Session, col, select
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from nurture.access.consent import LinkSigner
from nurture.access.visitor_links import IdentifyLinks
from nurture.cli.app import app as cli
from nurture.client.temporal import installed_binary
from nurture.config.config_loader import DEFAULT_CONFIG_DIR
from nurture.config.forms import FormsSource
from nurture.config.rules_source import RulesSource
from nurture.config.tracking_settings import RateLimits, TrackingSettings
from nurture.domain.leads import workflow_id_for
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.read_model import ConsentRow, LeadEventRecord
from nurture.store.tracking import Site, Visitor, create_site, visitor_key
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import (
    ARTIFACTS,
    TEST_RULES,
    TEST_SECRET,
    TEST_TEMPLATES,
    wait_for_state,
    wait_until,
)
from tests.test_tracking_api import BROWSER, ORIGIN, database, kept_for, new_site, send, visit

if TYPE_CHECKING:  # imported by pytest as a plugin of the tracking tests: not here too
    from tests.web_api import Api

SHIPPED_FORMS = DEFAULT_CONFIG_DIR / "forms.yaml"
CONTACT_CONSENT = (
    "Yes, email me about Nurture's products and events. I can unsubscribe at any time."
)
NEWSLETTER_CONSENT = "Send me the monthly newsletter. I can unsubscribe at any time."
# A third form beside the shipped two: other names than the profile's, a custom field, a
# number, an absolute thank-you page and its own event.
DETAILS_FORM = """
  - name: details
    fields:
      work-email: email
      first_name: first_name
      size: company_size
      phone: phone
      interest: custom.interest
    thank_you: https://www.example.test/thanks/details
    event: download
"""
CONTACT_PAGE = f"{ORIGIN}/demo/contact"
PAGE = {"Origin": ORIGIN, "User-Agent": BROWSER, "Referer": CONTACT_PAGE}
GOOGLEBOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"


@dataclass
class Website:
    api: Api
    config: Path
    """the service's config dir (the test rules, the shipped forms.yaml and DETAILS_FORM)"""


@pytest.fixture
async def web(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> AsyncIterator[Website]:
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    (config / "forms.yaml").write_text(SHIPPED_FORMS.read_text() + DETAILS_FORM)
    from tests.web_api import running_api

    async with running_api(dev_env, standin, tmp_path, config_dir=config) as api:
        yield Website(api, config)


def address(name: str = "ada") -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@example.com"


def lead_of(email: str) -> str:
    return IdentifyLinks(TEST_SECRET, "").new_lead_id(email)


async def post_form(
    http: httpx.AsyncClient, site: Site, form: str, fields: dict[str, str], **headers: str
) -> httpx.Response:
    """What a browser sends for a plain HTML form: urlencoded, no redirect followed."""
    return await http.post(f"/f/{site.site_key}/{form}", data=fields, headers={**PAGE, **headers})


async def capture(
    http: httpx.AsyncClient, site: Site, form: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    """What the tracker sends for ``<form data-nurture-form>``: JSON as text/plain."""
    return await http.post(
        f"/f/{site.site_key}/{form}",
        content=json.dumps(body),
        headers={**PAGE, "Content-Type": "text/plain", **headers},
    )


async def lead_exists(api: Api, email: str) -> bool:
    handle = api.engine.client.get_workflow_handle(workflow_id_for(lead_of(email)))
    try:
        await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def lead_handle(api: Api, email: str) -> Any:
    return api.engine.client.get_workflow_handle(workflow_id_for(lead_of(email)))


def visitor_row(api: Api, site: Site, visitor: str) -> Visitor | None:
    with Session(database(api)) as session:
        return session.get(Visitor, visitor_key(site.site_key, visitor))


def consent_rows(api: Api, lead: str) -> list[ConsentRow]:
    with Session(database(api)) as session:
        return list(session.exec(select(ConsentRow).where(col(ConsentRow.lead_id) == lead)).all())


def event_rows(api: Api, lead: str) -> list[LeadEventRecord]:
    with Session(database(api)) as session:
        query = select(LeadEventRecord).where(col(LeadEventRecord.lead_id) == lead)
        return list(session.exec(query.order_by(col(LeadEventRecord.at))).all())


def contact_fields(email: str, visitor: str | None = None, **changes: str) -> dict[str, str]:
    fields = {
        "email": email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "title": "Director of Research",
        "consent": "on",
        "website": "",  # the honeypot, left empty as people do
        "submit": "Send",  # what forms carry besides their fields: never stored
        "csrf_token": "t0k3n-from-the-site",
        **changes,
    }
    if visitor is not None:
        fields["_nv"] = visitor
    return fields


async def test_a_contact_form_post_joins_the_visits_before_it_records_consent_and_counts_once(
    web: Website,
) -> None:
    api = web.api
    site = new_site(api)
    visitor = uuid.uuid4().hex
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    home, pricing = visit("page_view", "/", start), visit("page_view", "/pricing", start)
    pricing["at"] = (start + timedelta(minutes=4)).isoformat()
    assert (
        await send(api, site, {"visitor": visitor, "events": [home, pricing]})
    ).status_code == 202

    email = address()
    before = datetime.now(UTC)
    answer = await post_form(api.http, site, "contact", contact_fields(email, visitor))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{ORIGIN}/demo/thanks"  # a path: on the page's site
    handle = lead_handle(api, email)
    state = await wait_for_state(handle, lambda s: s.events_applied == 3)
    assert [(e.rule, e.event_type) for e in state.score.recent] == [
        ("page_view", "page_view"),
        ("pricing page", "page_view"),
        ("form_fill", "form_fill"),  # after the anonymous visits: they were joined first
    ]
    assert [e.at for e in state.score.recent[:2]] == [start, start + timedelta(minutes=4)]
    assert state.score.recent[2].at >= before
    profile = state.profile
    assert (profile.email, profile.first_name, profile.last_name) == (email, "Ada", "Lovelace")
    assert (profile.company, profile.title) == ("Analytical Engines", "Director of Research")
    assert profile.custom == {}  # the button and the token were ignored
    assert [(c.source, c.text, c.version, c.ip) for c in state.consents] == [
        ("form", CONTACT_CONSENT, "contact-2026-12", "127.0.0.0")  # the address as kept
    ]
    assert kept_for(api, site, visitor) == []
    row = visitor_row(api, site, visitor)
    assert row is not None and row.lead_id == lead_of(email)

    lead = lead_of(email)
    await wait_until(lambda: consent_rows(api, lead), what="the consent row")
    (consent,) = consent_rows(api, lead)
    assert (consent.source, consent.text, consent.version) == (
        "form",
        CONTACT_CONSENT,
        "contact-2026-12",
    )
    assert consent.ip == "127.0.0.0"
    assert before <= consent.at.replace(tzinfo=UTC) <= datetime.now(UTC)
    await wait_until(lambda: len(event_rows(api, lead)) == 3, what="the events in the read model")
    form_fill = event_rows(api, lead)[-1]
    assert (form_fill.type, form_fill.url) == ("form_fill", CONTACT_PAGE)

    # Sent again (a double click, the browser's resend): the same success, counted once.
    again = await post_form(api.http, site, "contact", contact_fields(email, visitor))
    assert again.status_code == 303
    state = await wait_for_state(handle, lambda s: s.duplicates_ignored == 1)
    assert state.events_applied == 3
    assert [e.rule for e in state.score.recent].count("form_fill") == 1


async def test_the_trackers_copy_is_answered_with_json_and_only_the_fields_sent_change(
    web: Website,
) -> None:
    api = web.api
    site = new_site(api)
    email = address("grace")
    first = await capture(
        api.http,
        site,
        "contact",
        {
            "visitor": uuid.uuid4().hex,
            "consent": "granted",
            "fields": {
                "email": email,
                "first_name": "Grace",
                "company": "US Navy",
                "title": "Rear Admiral",
                "consent": False,  # the box left unticked
                "submit": "Send",
            },
        },
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"ok": True, "redirect": f"{ORIGIN}/demo/thanks"}
    assert first.headers["access-control-allow-origin"] == ORIGIN
    handle = lead_handle(api, email)
    state = await wait_for_state(handle, lambda s: s.events_applied == 1)
    assert state.consents == []  # not ticked: no consent

    news = await capture(
        api.http, site, "newsletter", {"fields": {"email": email.upper(), "consent": True}}
    )
    assert news.status_code == 200, news.text
    state = await wait_for_state(handle, lambda s: s.events_applied == 2)
    assert (state.profile.first_name, state.profile.company) == ("Grace", "US Navy")  # kept
    assert [(c.text, c.version) for c in state.consents] == [
        (NEWSLETTER_CONSENT, "newsletter-2026-12")
    ]

    fields = {"email": email, "first_name": "Grace", "company": "", "title": "Admiral"}
    third = await capture(api.http, site, "contact", {"fields": fields})
    assert third.status_code == 200, third.text
    state = await wait_for_state(handle, lambda s: s.events_applied == 3)
    assert (state.profile.company, state.profile.title) == ("US Navy", "Admiral")  # empty: kept

    details = await post_form(
        api.http,
        site,
        "details",
        {"work-email": email, "size": "1200", "phone": "+1 (555) 010-7788", "interest": "IoT"},
    )
    assert details.status_code == 303, details.text
    assert details.headers["location"] == "https://www.example.test/thanks/details"
    state = await wait_for_state(handle, lambda s: s.events_applied == 4)
    assert state.profile.company_size == 1200
    assert state.profile.phone == "+1 (555) 010-7788"
    assert state.profile.custom == {"interest": "IoT"}
    assert state.score.recent[-1].event_type == "download"  # the form's own event
    assert state.profile.first_name == "Grace"


async def test_every_bad_field_is_named_nothing_is_applied_and_a_good_post_still_works(
    web: Website,
) -> None:
    api = web.api
    site = new_site(api)
    visitor = uuid.uuid4().hex
    earlier = visit("page_view", "/pricing", datetime.now(UTC) - timedelta(hours=1))
    await send(api, site, {"visitor": visitor, "events": [earlier]})
    email = address()

    bad = contact_fields(email, visitor, first_name="   ", last_name="L" * 101, title="ok")
    answer = await post_form(api.http, site, "contact", bad)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    refused = dict(
        re.findall(r'<li data-field="([^"]+)"><strong>[^<]+</strong>: ([^<]+)</li>', answer.text)
    )
    assert refused == {
        "first_name": "required: fill this in",
        "last_name": "too long: 101 characters, at most 100",
    }
    assert f'<a id="back" href="{CONTACT_PAGE}">' in answer.text

    details = await capture(
        api.http,
        site,
        "details",
        {"fields": {"work-email": email, "size": "lots", "phone": "call me", "first_name": True}},
    )
    assert details.status_code == 422, details.text
    assert details.json()["errors"] == [
        {"field": "first_name", "msg": "expected text"},  # a checkbox's true is no name
        {"field": "size", "msg": "expected a whole number, e.g. 250"},
        {
            "field": "phone",
            "msg": "expected a phone number: 4 to 40 digits, spaces and + ( ) . / -",
        },
    ]
    assert details.headers["access-control-allow-origin"] == ORIGIN  # the page can read why
    unticked = await capture(api.http, site, "newsletter", {"fields": {"email": email}})
    assert unticked.status_code == 422
    assert unticked.json()["errors"] == [
        {"field": "consent", "msg": "required: tick this box to agree"}
    ]
    no_email = await capture(api.http, site, "newsletter", {"fields": {"consent": True}})
    assert no_email.json()["errors"] == [{"field": "email", "msg": "required: fill this in"}]
    bad_email = await capture(
        api.http, site, "details", {"fields": {"work-email": "ada at example"}}
    )
    assert bad_email.json()["errors"][0]["field"] == "work-email"
    assert "not a valid email address" in bad_email.json()["errors"][0]["msg"]

    # The address was good in every post, yet no lead exists, and the visit waits as it was.
    assert not await lead_exists(api, email)
    assert len(kept_for(api, site, visitor)) == 1
    row = visitor_row(api, site, visitor)
    assert row is not None and row.lead_id is None

    good = await post_form(api.http, site, "contact", contact_fields(email, visitor))
    assert good.status_code == 303, good.text
    state = await wait_for_state(lead_handle(api, email), lambda s: s.events_applied == 2)
    assert [e.event_type for e in state.score.recent] == ["page_view", "form_fill"]
    assert state.profile.last_name == "Lovelace"


async def test_values_are_kept_as_the_person_typed_them_never_read_as_templates(
    web: Website,
) -> None:
    api = web.api
    site = new_site(api)
    email = address()
    hostile = {
        "first_name": "{{ 7*7 }}",
        "last_name": "<script>alert('x')</script>",
        "company": "{% for x in range(3) %}x{% endfor %}",
        "title": 'R&D "lead"',
    }
    answer = await post_form(api.http, site, "contact", contact_fields(email, **hostile))
    assert answer.status_code == 303, answer.text
    details = await capture(
        api.http, site, "details", {"fields": {"work-email": email, "interest": "{{ config }}"}}
    )
    assert details.status_code == 200, details.text
    state = await wait_for_state(lead_handle(api, email), lambda s: s.events_applied == 2)
    profile = state.profile
    assert [profile.first_name, profile.last_name, profile.company, profile.title] == list(
        hostile.values()
    )
    assert profile.custom == {"interest": "{{ config }}"}

    refused = await post_form(
        api.http, site, "contact", {"email": "<script>alert(1)</script>", "first_name": "{{ 7*7 }}"}
    )
    assert refused.status_code == 422
    assert "<script>alert(1)" not in refused.text  # shown as text, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.text


async def test_what_must_store_nothing_stores_nothing_and_the_person_sees_the_same(
    web: Website,
) -> None:
    api = web.api
    site = new_site(api)
    email = address("bot")
    fields = contact_fields(email)

    other = await post_form(api.http, site, "contact", fields, Origin="https://evil.example")
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    assert other.headers["content-type"].startswith("text/html")  # a person reads it
    other_json = await capture(
        api.http, site, "contact", {"fields": fields}, Origin="https://evil.example"
    )
    assert other_json.status_code == 403 and "origin" in other_json.json()["detail"]
    unknown_key = await api.http.post("/f/sk_nosuchkey/contact", data=fields, headers=PAGE)
    assert unknown_key.status_code == 403
    unknown_form = await capture(api.http, site, "webinar", {"fields": fields})
    assert unknown_form.status_code == 404 and "webinar" in unknown_form.json()["detail"]
    assert unknown_form.headers["access-control-allow-origin"] == ORIGIN

    thanks = f"{ORIGIN}/demo/thanks"
    honeypot = await post_form(api.http, site, "contact", {**fields, "website": "cheap.example"})
    bot = await post_form(api.http, site, "contact", fields, **{"User-Agent": GOOGLEBOT})
    bot_json = await capture(
        api.http, site, "contact", {"fields": fields}, **{"User-Agent": GOOGLEBOT}
    )
    assert [honeypot.status_code, bot.status_code] == [303, 303]  # as if it had worked
    assert honeypot.headers["location"] == bot.headers["location"] == thanks
    assert bot_json.status_code == 200 and bot_json.json() == {"ok": True, "redirect": thanks}
    assert not await lead_exists(api, email)

    preflight = await api.http.options(
        f"/f/{site.site_key}/contact",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    refused = await api.http.options(
        f"/f/{site.site_key}/contact", headers={"Origin": "https://evil.example"}
    )
    assert refused.status_code == 403


async def test_a_person_who_opted_out_of_tracking_is_still_heard_but_their_visits_stay_apart(
    web: Website,
) -> None:
    """Global Privacy Control (or consent denied) is about tracking: the form the person sent
    is applied, but the visitor is not joined to them."""
    api = web.api
    site = new_site(api)
    visitor = uuid.uuid4().hex
    await send(
        api, site, {"visitor": visitor, "events": [visit("page_view", "/", datetime.now(UTC))]}
    )
    email = address()
    answer = await post_form(
        api.http, site, "contact", contact_fields(email, visitor), **{"Sec-GPC": "1"}
    )
    assert answer.status_code == 303
    state = await wait_for_state(lead_handle(api, email), lambda s: s.events_applied == 1)
    assert [e.event_type for e in state.score.recent] == ["form_fill"]
    assert len(kept_for(api, site, visitor)) == 1
    denied = await capture(
        api.http,
        site,
        "newsletter",
        {"visitor": visitor, "consent": "denied", "fields": {"email": email, "consent": True}},
    )
    assert denied.status_code == 200
    await wait_for_state(lead_handle(api, email), lambda s: s.events_applied == 2)
    row = visitor_row(api, site, visitor)
    assert row is not None and row.lead_id is None


async def test_over_the_form_rate_limit_is_a_429_with_retry_after(web: Website) -> None:
    api = web.api
    site = new_site(api)
    settings = WebSettings(
        tracking=TrackingSettings(rate_limits=RateLimits(forms_per_ip="2/minute"))
    )
    app = create_app(
        api.engine.client,
        database(api),
        LinkSigner(secret=TEST_SECRET),
        settings,
        task_queue=api.engine.task_queue,
        forms=FormsSource(web.config).current,
    )
    async with serving(app, "127.0.0.1", 0) as url, httpx.AsyncClient(base_url=url) as http:
        emails = [address(f"p{n}") for n in range(3)]
        answers = [await post_form(http, site, "contact", contact_fields(e)) for e in emails]
        assert [a.status_code for a in answers] == [303, 303, 429]
        limited = answers[2]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["content-type"].startswith("text/html")
        assert "retry after" in limited.text
        as_json = await capture(http, site, "contact", {"fields": contact_fields(emails[2])})
        assert as_json.status_code == 429 and "retry-after" in as_json.headers
    assert not await lead_exists(api, emails[2])
    assert await lead_exists(api, emails[0]) and await lead_exists(api, emails[1])


async def test_with_temporal_down_a_post_is_a_503_that_leaves_nothing_half_done(
    web: Website,
) -> None:
    api = web.api
    site = new_site(api)
    visitor = uuid.uuid4().hex
    earlier = visit("download", "/whitepaper.pdf", datetime.now(UTC) - timedelta(minutes=30))
    await send(api, site, {"visitor": visitor, "events": [earlier]})
    gone = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=api.engine.client.data_converter,
    )
    dead = gone.client
    await gone.shutdown()  # the server is gone; the client stays
    app = create_app(
        dead,
        database(api),
        LinkSigner(secret=TEST_SECRET),
        WebSettings(),
        task_queue=api.engine.task_queue,
        forms=FormsSource(web.config).current,
    )
    email = address()
    body = {"visitor": visitor, "fields": {"email": email, "consent": True}}
    async with (
        serving(app, "127.0.0.1", 0) as url,
        httpx.AsyncClient(base_url=url, timeout=120) as http,
    ):
        down = await capture(http, site, "newsletter", body)
    assert down.status_code == 503, down.text
    assert down.headers["retry-after"] == "5"
    assert "try again" in down.json()["detail"]
    assert len(kept_for(api, site, visitor)) == 1  # the visit still waits for its lead
    row = visitor_row(api, site, visitor)
    assert row is not None and row.lead_id is None

    # The page (or the person) sends it again once Temporal is back: applied once.
    for _retry in range(2):
        answer = await capture(api.http, site, "newsletter", body)
        assert answer.status_code == 200, answer.text
    state = await wait_for_state(
        lead_handle(api, email), lambda s: s.events_applied + s.duplicates_ignored == 3
    )
    assert [e.event_type for e in state.score.recent] == ["download", "form_fill"]
    assert state.duplicates_ignored == 1


def _write_later(path: Path, text: str) -> None:
    """Write ``path`` with a modification time distinct from the last, whatever the fs."""
    stat = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


async def test_a_forms_yaml_edit_is_picked_up_and_a_broken_one_keeps_the_forms_in_force(
    web: Website,
) -> None:
    api = web.api
    site = new_site(api)
    forms = web.config / "forms.yaml"
    good = forms.read_text()
    broken = good.replace("thank_you: /demo/thanks", "thank_you: demo/thanks", 1)
    _write_later(forms, broken)
    webinar = "\n  - name: webinar\n    fields: {email: email}\n    thank_you: /webinar/seen\n"
    await asyncio.sleep(1.2)  # the service looks at the file every second
    email = address()
    still = await post_form(api.http, site, "contact", contact_fields(email))
    assert still.status_code == 303, still.text  # the last good forms stay in force
    assert still.headers["location"] == f"{ORIGIN}/demo/thanks"

    _write_later(forms, good + webinar)
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while (
        answer := await capture(api.http, site, "webinar", {"fields": {"email": email}})
    ).status_code == 404:
        assert datetime.now(UTC) < deadline, "the new form never appeared"
    assert answer.status_code == 200, answer.text
    assert answer.json()["redirect"] == f"{ORIGIN}/webinar/seen"


def test_config_check_names_the_file_line_and_key_of_a_broken_forms_or_tracking_yaml(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    runner = CliRunner()
    ok = runner.invoke(cli, ["config", "check", "--config", str(config), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["forms"] == ["contact", "newsletter"]

    forms = config / "forms.yaml"
    shipped = forms.read_text()
    lines = shipped.splitlines()
    thank_you = next(i for i, line in enumerate(lines) if line.startswith("    thank_you:"))
    lines[thank_you] = "    thank_you: demo/thanks"
    forms.write_text("\n".join(lines) + "\n")
    (config / "tracking.yaml").write_text("rate_limits:\n  per_ip: 10/minute\n  per_page: 1\n")
    broken = runner.invoke(cli, ["config", "check", "--config", str(config), "--json"])
    assert broken.exit_code == 2, broken.output
    problems = json.loads(broken.output)["problems"]
    assert any(
        p.startswith(f'{forms}:{thank_you + 1}: form "contact": thank_you: an absolute URL')
        for p in problems
    ), problems
    tracking = config / "tracking.yaml"
    assert any(p.startswith(f"{tracking}:3: rate_limits.per_page: unknown key") for p in problems)

    # A form whose event scoring.yaml does not list would be recorded but never scored.
    lines[thank_you] = "    thank_you: /demo/thanks\n    event: webinar_seen"
    forms.write_text("\n".join(lines) + "\n")
    tracking.unlink()
    unscored = runner.invoke(cli, ["config", "check", "--config", str(config)])
    assert unscored.exit_code == 2, unscored.output
    assert f"forms.yaml:{thank_you + 2}: form \"contact\": event: 'webinar_seen' is not" in (
        " ".join(unscored.output.split())
    )


def test_config_status_shows_a_refused_forms_yaml_edit_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(TEST_RULES, config)
    forms = config / "forms.yaml"
    forms.write_text(SHIPPED_FORMS.read_text())
    database_url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = make_engine(database_url)
    RulesSource(config, TEST_TEMPLATES).record_status_in(engine)
    source = FormsSource(config, recheck_every=0)
    source.record_status_in(engine)
    good = source.version
    env = {"NURTURE_DATABASE_URL": database_url}
    runner = CliRunner()
    shown = runner.invoke(cli, ["config", "status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["forms"]["version"] == good

    _write_later(forms, forms.read_text().replace("name: newsletter", "name: News Letter"))
    assert source.current().form("newsletter") is not None  # refused: still in force
    shown = runner.invoke(cli, ["config", "status", "--json"], env=env)
    assert shown.exit_code == 1, shown.output
    reported = json.loads(shown.output)
    assert reported["forms"]["version"] == good
    assert reported["forms"]["last_rejected_edit"]["pending"] is True
    line = next(
        n for n, text in enumerate(forms.read_text().splitlines(), 1) if "News Letter" in text
    )
    expected = f'{forms}:{line}: form "News Letter": name: 1 to 64 lower-case letters'
    assert any(p.startswith(expected) for p in reported["forms"]["last_rejected_edit"]["problems"])
    assert any(p.startswith(expected) for p in reported["website_problems"])  # on disk now


def site_pages(nurture: str, site_key: str) -> FastAPI:
    """A customer's website on its own origin: a contact page whose plain HTML form posts to
    the service, and the thank-you page forms.yaml sends people to."""
    pages = FastAPI()
    form = f"""<!DOCTYPE html><html><head><title>Contact us</title></head><body>
<h1>Talk to us</h1>
<form method="post" action="{nurture}/f/{site_key}/contact">
<p><label>Email <input name="email" type="text"></label></p>
<p><label>First name <input name="first_name"></label></p>
<p><label>Last name <input name="last_name"></label></p>
<p><label>Company <input name="company"></label></p>
<input name="website" tabindex="-1" autocomplete="off" style="display:none">
<p><label><input type="checkbox" name="consent"> {CONTACT_CONSENT}</label></p>
<button type="submit">Send</button>
</form></body></html>"""

    @pages.get("/contact")
    async def contact() -> HTMLResponse:
        return HTMLResponse(form)

    @pages.get("/demo/thanks")
    async def thanks() -> HTMLResponse:
        return HTMLResponse("<!DOCTYPE html><h1 id='thanks'>Thank you, we will be in touch</h1>")

    return pages


async def test_a_person_sends_the_contact_form_in_chromium_fixes_a_bad_field_and_lands_on_thanks(
    web: Website, browser: Browser
) -> None:
    """The real browser's cross-site post (its own Origin and Referer): a bad field is a page
    naming it, whose link goes back to the form as the person left it; the good post goes on
    to the site's thank-you page and makes the lead, with consent."""
    api = web.api
    assert api.engine.web_url is not None
    db = database(api)
    placeholder = FastAPI()  # the site's origin is its port: known once it is served
    async with serving(placeholder, "127.0.0.1", 0) as site_url:
        site = create_site(db, f"www-{uuid.uuid4().hex[:6]}", [site_url])
        placeholder.router.routes.extend(site_pages(api.engine.web_url, site.site_key).routes)
        # Headless Chromium says so in its user agent, and is taken for a bot: a person's does not.
        page = await browser.new_page(user_agent=BROWSER)
        await page.goto(f"{site_url}/contact")
        email = address()
        await page.fill("input[name=email]", email.replace("@", " at "))
        await page.fill("input[name=last_name]", "Lovelace")
        await page.click("button[type=submit]")
        await page.wait_for_selector("#problems")
        assert page.url == f"{api.engine.web_url}/f/{site.site_key}/contact"
        problems = await page.inner_text("#problems")
        assert "email: not a valid email address" in problems
        assert "first_name: required: fill this in" in problems
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "form-refused.png"), full_page=True)

        await page.click("#back")
        await page.wait_for_url(f"{site_url}/contact")
        assert await page.input_value("input[name=last_name]") == "Lovelace"  # as left
        await page.fill("input[name=email]", email)
        await page.fill("input[name=first_name]", "Ada")
        await page.check("input[name=consent]")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{site_url}/demo/thanks")
        assert "Thank you" in await page.inner_text("#thanks")
        await page.close()
    state = await wait_for_state(lead_handle(api, email), lambda s: s.events_applied == 1)
    assert (state.profile.first_name, state.profile.last_name) == ("Ada", "Lovelace")
    assert [(c.text, c.ip) for c in state.consents] == [(CONTACT_CONSENT, "127.0.0.0")]
    assert state.score.recent[-1].detail is not None
    assert state.score.recent[-1].detail.startswith(site_url)  # the page, as the browser told
