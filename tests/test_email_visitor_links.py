"""Links in our emails identify the reader (issue 16, docs/tracking.md "Links in our emails"):
a touch's links to a live site carry a token that names the lead, in the HTML and the text
part; other links, our own signed links and rep alerts are left as written; a retried send
delivers the same token; a database that cannot say which sites exist sends untagged. Real
parts: a worker on the time-skipping or dev server, the SendGrid stand-in driven by the real
client, the HTTP service on loopback, SQLite."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog
from sqlalchemy import text
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import EmailActivities, Mailer
from nurture.access.consent import LinkSigner
from nurture.access.email_links import LinkTagging
from nurture.access.visitor_links import IdentifyLinks
from nurture.config.settings import MailerSettings
from nurture.contract.messages import EmailRequest
from nurture.domain.leads import workflow_id_for
from nurture.domain.rules import Sender
from nurture.standins.sendgrid_standin import RecordedMessage, SendGridStandIn
from nurture.store.db import OutboxMessage, make_engine
from nurture.store.tracking import Site, create_site
from tests.conftest import (
    TEST_SECRET,
    TEST_TEMPLATES,
    Engine,
    lead_id,
    running_engine,
    wait_for_email,
    wait_for_state,
)

SITE = "https://www.example.test"
SITE_LINK = f"{SITE}/pricing?utm_source=nurture&utm_campaign=enterprise#plans"
PARTNER_LINK = "https://partner.example/offer?ref=nurture"
TOUCH_HTML = """{% extends "layout.html" %}
{% block content %}<p>Hi {{ lead.first_name or "there" }},</p>
<p><a
href="https://www.example.test/pricing?utm_source=nurture&amp;utm_campaign={{ cadence }}#plans">
See our plans</a>
or <a href='https://partner.example/offer?ref=nurture'>our partner's offer</a>.</p>
<!-- <a href="https://www.example.test/draft">not a link: a comment</a> -->
<p>Write to <a href="mailto:sales@test.example">sales@test.example</a>.</p>
<p><a clicktracking="off" href="{{ preferences_url }}">Preferences</a>
<a clicktracking="off" href="{{ unsubscribe_url }}">Unsubscribe</a></p>{% endblock %}
"""
TOUCH_TEXT = """Hi {{ lead.first_name or "there" }},
See our plans: https://www.example.test/pricing?utm_source=nurture&utm_campaign={{ cadence }}#plans
Our partner's offer: https://partner.example/offer?ref=nurture.
Unsubscribe: {{ unsubscribe_url }}
"""
ALERT_LINK = '<p>Their pricing visits: <a href="https://www.example.test/pricing">pricing</a></p>'
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


class Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name == "href" and value]


def hrefs(html: str) -> list[str]:
    parser = Hrefs()
    parser.feed(html)
    return parser.found


def token_in(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("nt")
    return values[0] if values else None


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """The test templates with a touch linking to the site, a partner, a mailbox and our own
    pages (HTML and text parts), and a rep alert linking to the site."""
    copy = tmp_path / "templates"
    shutil.copytree(TEST_TEMPLATES, copy)
    (copy / "t" / "touch.html").write_text(TOUCH_HTML)
    (copy / "t" / "touch.txt").write_text(TOUCH_TEXT)
    alert = copy / "notifications" / "handoff.html"
    alert.write_text(alert.read_text().replace("{% endblock %}", ALERT_LINK + "{% endblock %}"))
    return copy


def register_site(database_url: str, origins: list[str] | None = None) -> Site:
    return create_site(make_engine(database_url), f"www-{uuid.uuid4().hex[:6]}", origins or [SITE])


async def first_touch(engine: Engine, lead: str) -> RecordedMessage:
    """An enterprise lead's first touch (due at once)."""
    await engine.profile(lead_id=lead, email=f"{lead}@corp.example", company_size=800)
    (touch,) = await wait_for_email(engine.standin, lead, "touch")
    return touch


# --- what is tagged, what is not ----------------------------------------------------------------

TAGGING = LinkTagging(
    origins=frozenset({SITE, "http://127.0.0.1:8080"}),
    token="T0K.en_-",
    own_links=("http://127.0.0.1:8080/u/",),
)


@pytest.mark.parametrize(
    ("written", "becomes"),
    [
        (  # entities in the attribute, the other attributes and the fragment kept
            '<a class="b" href="https://www.example.test/p?a=1&amp;b=2#f">x</a>',
            '<a class="b" href="https://www.example.test/p?a=1&amp;b=2&amp;nt=T0K.en_-#f">x</a>',
        ),
        (  # as a browser reads it: any case, unquoted, the default port; a token replaced
            "<A HREF=HTTPS://WWW.EXAMPLE.TEST:443?nt=old&q>x</A>",
            '<a href="https://WWW.EXAMPLE.TEST:443/?q&amp;nt=T0K.en_-">x</A>',
        ),
        (  # an image map's area, self-closed; a site on our own host (the demo)
            '<area shape="rect" href="http://127.0.0.1:8080/demo/"/>',
            '<area shape="rect" href="http://127.0.0.1:8080/demo/?nt=T0K.en_-"/>',
        ),
    ],
)
def test_a_link_to_a_site_gets_the_token_and_keeps_the_rest(written: str, becomes: str) -> None:
    assert TAGGING.html(f"<p>before</p>\n  {written}\n<p>after &amp; more</p>") == (
        f"<p>before</p>\n  {becomes}\n<p>after &amp; more</p>"
    )


@pytest.mark.parametrize(
    "written",
    [
        '<a href="https://www.example.test.evil.example/">lookalike host</a>',
        '<a href="http://www.example.test/">another scheme</a>',
        '<a href="https://user@www.example.test/">credentials</a>',
        '<a href="mailto:sales@www.example.test">mail</a>',
        '<a href="http://127.0.0.1:8080/u/token">our unsubscribe link</a>',
        '<link rel="stylesheet" href="https://www.example.test/s.css">',
        '<!-- <a href="https://www.example.test/">in a comment</a> -->',
        "<script>var a = '<a href=\"https://www.example.test/\">';</script>",
        '<a title="href=https://www.example.test/">no href</a>',
    ],
)
def test_what_is_not_a_link_to_a_site_is_left_as_written(written: str) -> None:
    assert TAGGING.html(written) == written


def test_urls_in_text_get_the_token_and_the_words_around_them_stay() -> None:
    text = (
        "Plans: https://www.example.test/pricing. (See https://www.example.test/a?b=c)\n"
        "[http://127.0.0.1:8080/u/x] www.example.test/bare mailto:a@www.example.test "
        "https://partner.example/p"
    )
    assert TAGGING.text(text) == (
        "Plans: https://www.example.test/pricing?nt=T0K.en_-. "
        "(See https://www.example.test/a?b=c&nt=T0K.en_-)\n"
        "[http://127.0.0.1:8080/u/x] www.example.test/bare mailto:a@www.example.test "
        "https://partner.example/p"
    )


# --- a touch through a real worker -----------------------------------------------------------


async def test_a_touch_links_to_the_site_carry_the_leads_token_and_nothing_else_changes(
    time_skipping_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    templates: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    make_engine(database_url)  # the schema, so that a site can be registered before the worker
    register_site(database_url, [SITE, "https://blog.example.test"])
    lead = lead_id()
    async with running_engine(
        time_skipping_env.client, standin, tmp_path, templates_dir=templates
    ) as engine:
        touch = await first_touch(engine, lead)
        await engine.request_call(lead)  # a handoff: the rep's alert links to the site too
        (alert,) = await wait_for_email(standin, lead, "handoff")

    html, plain = touch.contents["text/html"], touch.contents["text/plain"]
    unsubscribe = touch.headers["List-Unsubscribe"][1:-1]
    links = hrefs(html)
    site_link = links[0]
    token = token_in(site_link)
    assert token is not None, links
    assert IdentifyLinks(TEST_SECRET, "").lead_of(token) == lead
    assert site_link == SITE_LINK.replace("#plans", f"&nt={token}#plans")
    # Every other link as the template wrote it; our own links untouched.
    assert links[1:] == [PARTNER_LINK, "mailto:sales@test.example", links[3], unsubscribe]
    assert links[3].startswith("http://127.0.0.1:8080/") and token_in(links[3]) is None
    # Nothing else in the email changed: without the token it is the rendered template.
    assert f"&amp;nt={token}" in html
    assert 'href="https://www.example.test/draft"' in html  # the comment is not a link
    untagged = html.replace(f"&amp;nt={token}", "")
    assert (
        'href="https://www.example.test/pricing?utm_source=nurture&amp;utm_campaign=enterprise#plans"'
        in untagged
    )
    assert "<a href='https://partner.example/offer?ref=nurture'>" in untagged
    # The text part: the same token on the site's URL, the rest as written.
    assert f"See our plans: {SITE_LINK.replace('#plans', f'&nt={token}#plans')}\n" in plain
    assert f"Our partner's offer: {PARTNER_LINK}.\n" in plain
    assert plain.rstrip().endswith(f"Unsubscribe: {unsubscribe}")
    # What the outbox keeps (the person's export) is what was delivered.
    with Session(make_engine(database_url)) as session:
        row = session.get(OutboxMessage, touch.custom_args["nurture_key"])
    assert row is not None and (row.html_body, row.text_body) == (html, plain)

    # The rep's alert links to the same site: a rep's click must not join their browser.
    assert "https://www.example.test/pricing" in hrefs(alert.contents["text/html"])
    assert "nt=" not in alert.contents["text/html"] and "nt=" not in alert.contents["text/plain"]


async def test_with_no_site_registered_a_touch_is_sent_as_rendered(
    time_skipping_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    templates: Path,
) -> None:
    lead = lead_id()
    async with running_engine(
        time_skipping_env.client, standin, tmp_path, templates_dir=templates
    ) as engine:
        touch = await first_touch(engine, lead)
    html, plain = touch.contents["text/html"], touch.contents["text/plain"]
    assert hrefs(html)[:3] == [SITE_LINK, PARTNER_LINK, "mailto:sales@test.example"]
    assert "nt=" not in html and "nt=" not in plain
    assert f"See our plans: {SITE_LINK}\n" in plain


# --- one send, retried; a database that cannot answer ------------------------------------------


def touch_request(lead: str) -> EmailRequest:
    return EmailRequest(
        key=f"touch:{lead}:enterprise:e1:c1:s01",
        lead_id=lead,
        category="touch",
        to_email=f"{lead}@corp.example",
        sender=Sender(email="m@test.example"),
        template="t/touch.html",
        subject="Plans",
        context={"lead": {"first_name": "Bo"}, "step": "s01", "cadence": "enterprise", "cycle": 1},
    )


def email_activities(
    database_url: str, standin: SendGridStandIn, templates: Path
) -> EmailActivities:
    return EmailActivities(
        make_engine(database_url),
        Mailer(MailerSettings("SG.k", standin.url)),
        templates,
        LinkSigner(secret=TEST_SECRET),
    )


def test_a_retried_send_delivers_the_token_its_first_attempt_kept(
    database_url: str, templates: Path
) -> None:
    register_site(database_url)
    request = touch_request("lead-retried")
    with SendGridStandIn() as standin:
        emails = email_activities(database_url, standin, templates)
        standin.fail_next(503)  # SendGrid down for the first attempt
        with pytest.raises(ApplicationError, match="SendGrid unavailable"):
            ActivityEnvironment().run(emails.send_email, request)
        with Session(emails.engine) as session:
            first = session.get(OutboxMessage, request.key)
            assert first is not None and first.html_body is not None
        time.sleep(1.1)  # a token signed now would differ from the first attempt's
        assert ActivityEnvironment().run(emails.send_email, request).status == "sent"
        (sent,) = standin.messages_with(nurture_key=request.key)

    assert sent.contents["text/html"] == first.html_body
    assert sent.contents["text/plain"] == first.text_body
    token = token_in(hrefs(first.html_body)[0])
    assert token is not None and IdentifyLinks(TEST_SECRET, "").lead_of(token) == "lead-retried"


def test_a_database_that_cannot_list_the_sites_sends_the_touch_untagged(
    tmp_path: Path, templates: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    register_site(database_url)
    with make_engine(database_url).begin() as connection:  # the sites cannot be read
        connection.execute(text("ALTER TABLE site RENAME TO site_elsewhere"))
    request = touch_request("lead-untagged")
    with SendGridStandIn() as standin, structlog.testing.capture_logs() as logs:
        emails = email_activities(database_url, standin, templates)
        result = ActivityEnvironment().run(emails.send_email, request)
        (sent,) = standin.messages_with(nurture_key=request.key)

    assert result.status == "sent"
    assert hrefs(sent.contents["text/html"])[0] == SITE_LINK
    assert "nt=" not in sent.contents["text/plain"]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "site origins unreadable: links in this email carry no visitor token"
    ]


# --- the whole way: the email's link identifies the visitor ------------------------------------


@pytest.fixture
async def web_engine(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, templates: Path
) -> AsyncIterator[Engine]:
    database_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    make_engine(database_url)
    async with running_engine(
        dev_env.client, standin, tmp_path, templates_dir=templates, web=True
    ) as engine:
        yield engine


async def test_the_token_of_an_emailed_link_joins_the_visitor_to_the_lead(
    web_engine: Engine,
) -> None:
    site = register_site(web_engine.database_url)
    visitor = uuid.uuid4().hex
    headers = {"Origin": SITE, "User-Agent": BROWSER, "Content-Type": "text/plain"}
    earlier = datetime.now(UTC) - timedelta(hours=2)
    views = [
        {"id": uuid.uuid4().hex, "type": "page_view", "url": f"{SITE}{path}",
         "at": (earlier + timedelta(minutes=n)).isoformat()}
        for n, path in enumerate(("/", "/pricing"))
    ]  # fmt: skip
    lead = lead_id()
    async with httpx.AsyncClient(base_url=web_engine.web_url or "", timeout=30) as http:
        kept = await http.post(
            f"/t/{site.site_key}",
            content=json.dumps({"visitor": visitor, "events": views}),
            headers=headers,
        )
        assert kept.json() == {"stored": 2, "dropped": 0}  # anonymous: kept, scoring nothing
        touch = await first_touch(web_engine, lead)
        clicked = hrefs(touch.contents["text/html"])[0]
        token = token_in(clicked)
        assert clicked.startswith(f"{SITE}/pricing?") and token is not None
        # The tracker on the page the reader lands on sends the link's token.
        answer = await http.post(
            f"/t/{site.site_key}/identify",
            content=json.dumps({"visitor": visitor, "token": token}),
            headers=headers,
        )
        assert answer.status_code == 200, answer.text

    handle = web_engine.client.get_workflow_handle(workflow_id_for(lead))
    state = await wait_for_state(handle, lambda s: s.events_applied == 2)
    assert {f"{SITE}/", f"{SITE}/pricing"} <= {e.detail for e in state.score.recent}
    anonymous = [t.detail for t in state.timeline if t.kind == "event"]
    assert len(anonymous) == 2 and all("anonymous visit" in d for d in anonymous), anonymous
